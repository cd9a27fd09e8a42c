module unloop.test/testapp

go 1.22
