// testapp is the testbed's stand-in for a real service. Each subcommand fails (or works) the way a
// real application does, with the log lines real applications print, so that unloop is tested on
// what a kubelet and a container runtime really report. Standard library only; built static.
//
// Installed as /app/testapp; invoked as `java` (a symlink) it behaves like a JVM launcher.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// version is stamped at build time (-ldflags "-X main.version=2.0.0"). 2.x requires CACHE_URL in serve mode:
// the change a bad rollout ships without updating the Deployment.
var version = "1.0.0"

var logger = log.New(os.Stderr, "", log.LstdFlags|log.LUTC)

func infof(format string, args ...any)  { logger.Printf("INFO: "+format, args...) }
func warnf(format string, args ...any)  { logger.Printf("WARN: "+format, args...) }
func errorf(format string, args ...any) { logger.Printf("ERROR: "+format, args...) }
func fatalf(format string, args ...any) {
	logger.Printf("FATAL: "+format, args...)
	os.Exit(1)
}

func appName() string {
	if n := os.Getenv("APP_NAME"); n != "" {
		return n
	}
	return "app"
}

func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fatalf("invalid value for %s: %q is not a number", name, v)
	}
	return n
}

func envList(name string) []string {
	var out []string
	for _, s := range strings.Split(os.Getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func main() {
	if filepath.Base(os.Args[0]) == "java" {
		javaMain(os.Args[1:])
		return
	}
	cmd := "serve"
	args := os.Args[1:]
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		serve(args)
	case "connect":
		connect(args)
	case "alloc":
		alloc()
	case "segv":
		segv()
	case "migrate":
		migrate()
	case "exit":
		code := 0
		if len(args) > 0 {
			code, _ = strconv.Atoi(args[0])
		}
		infof("%s finished, exiting with code %d", appName(), code)
		os.Exit(code)
	case "version", "--version", "-version":
		fmt.Printf("testapp %s %s/%s\n", version, runtime.GOOS, runtime.GOARCH)
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown command %q\nusage: testapp serve|connect|alloc|segv|migrate|exit N|version\n", cmd)
		os.Exit(64)
	}
}

// serve checks its configuration (the variables in REQUIRED_ENV, by default DATABASE_URL; the files in
// REQUIRED_FILES and the --config file), optionally takes STARTUP_DELAY seconds to warm up (nothing
// listens meanwhile, so probes see connection refused), then serves /healthz, /readyz and / on PORT.
func serve(args []string) {
	infof("starting %s version %s (pid %d)", appName(), version, os.Getpid())
	required := []string{"DATABASE_URL"}
	if _, set := os.LookupEnv("REQUIRED_ENV"); set {
		required = envList("REQUIRED_ENV")
	}
	if strings.HasPrefix(version, "2.") {
		required = append(required, "CACHE_URL")
	}
	for _, name := range required {
		if os.Getenv(name) == "" {
			fatalf("required environment variable %s is not set", name)
		}
	}
	files := envList("REQUIRED_FILES")
	for i := 0; i < len(args); i++ {
		if args[i] == "--config" && i+1 < len(args) {
			files = append(files, args[i+1])
			i++
		} else if v, ok := strings.CutPrefix(args[i], "--config="); ok {
			files = append(files, v)
		}
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			fatalf("cannot load configuration: %v", err)
		}
		infof("loaded configuration from %s (%d bytes)", path, len(data))
	}
	if delay := envInt("STARTUP_DELAY", 0); delay > 0 {
		infof("warming up caches before accepting traffic (about %ds)", delay)
		start := time.Now()
		for elapsed := 0; elapsed < delay; elapsed += 10 {
			step := min(10, delay-elapsed)
			time.Sleep(time.Duration(step) * time.Second)
			infof("warm-up %d%% done (%.0fs elapsed)", 100*(elapsed+step)/delay, time.Since(start).Seconds())
		}
	}
	listenAndServe()
}

func listenAndServe() {
	port := envInt("PORT", 8080)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "{\"app\":%q,\"version\":%q}\n", appName(), version)
	})
	srv := &http.Server{Addr: fmt.Sprintf(":%d", port), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		fatalf("cannot listen on %s: %v", srv.Addr, err)
	}
	// Graceful shutdown is wired only once the server is up, as most services do: a SIGTERM during
	// start-up gets the Go runtime's default handling.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-stop
		infof("received %v, shutting down", s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	infof("listening on :%d", port)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fatalf("server error: %v", err)
	}
	infof("server stopped")
}

// connect dials the dependency named by DATABASE_URL (or the host:port argument) a few times, the way
// a service checks its database at start-up, and exits 1 with the dial error if it never answers.
func connect(args []string) {
	infof("starting %s version %s (pid %d)", appName(), version, os.Getpid())
	target := ""
	what := "dependency"
	if len(args) > 0 {
		target = args[0]
	} else if raw := os.Getenv("DATABASE_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			fatalf("invalid DATABASE_URL: %q", raw)
		}
		target, what = u.Host, "database"
		if u.Port() == "" {
			target = net.JoinHostPort(u.Hostname(), "5432")
		}
	} else {
		fatalf("required environment variable DATABASE_URL is not set")
	}
	attempts := envInt("CONNECT_ATTEMPTS", 3)
	var err error
	for i := 1; i <= attempts; i++ {
		infof("connecting to %s at %s (attempt %d/%d)", what, target, i, attempts)
		var c net.Conn
		c, err = net.DialTimeout("tcp", target, 5*time.Second)
		if err == nil {
			c.Close()
			infof("connected to %s at %s", what, target)
			listenAndServe()
			return
		}
		if i < attempts {
			warnf("%s not reachable: %v; retrying in 2s", what, err)
			time.Sleep(2 * time.Second)
		}
	}
	fatalf("cannot connect to %s: %v", what, err)
}

// alloc fills a cache in steps, touching every page so the memory is really charged to the cgroup.
// ALLOC_LIMIT_MB (0: no limit) is how much the app needs; past it, it serves.
func alloc() {
	infof("starting %s version %s (pid %d)", appName(), version, os.Getpid())
	step := envInt("ALLOC_STEP_MB", 16)
	limit := envInt("ALLOC_LIMIT_MB", 0)
	infof("loading product catalog into memory")
	var held [][]byte
	total := 0
	for limit == 0 || total < limit {
		b := make([]byte, step<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		total += step
		if total%64 == 0 || total < 64 {
			infof("catalog cache: %d MiB loaded", total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	infof("catalog cache ready (%d MiB in %d chunks)", total, len(held))
	listenAndServe()
	runtime.KeepAlive(held)
}

// segv dies of a real SIGSEGV: the Go runtime's handler is replaced by the default action, then the
// process writes to an unmapped address, as native code with a bad pointer does (exit 139). A SIGSEGV
// sent with kill(2) would not do: a container's PID 1 ignores signals it has no handler for.
func segv() {
	infof("starting %s version %s (pid %d)", appName(), version, os.Getpid())
	infof("processing job 4812: decoding thumbnail image/jpeg (2.1 MiB)")
	time.Sleep(500 * time.Millisecond)
	var act [4]uintptr // struct kernel_sigaction{handler, flags, restorer, mask}: all zero = SIG_DFL
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV),
		uintptr(unsafe.Pointer(&act[0])), 0, 8, 0, 0); e != 0 {
		fatalf("rt_sigaction: %v", e)
	}
	addr := uintptr(0xdead0000)
	*(*int)(unsafe.Pointer(addr)) = 1 //nolint:govet // the point is a real fault
	fatalf("still alive after writing to %#x", addr)
}

// migrate is an init container's schema migration that fails on one migration.
func migrate() {
	infof("running database migrations for %s", appName())
	for _, m := range []string{"0040_create_customers", "0041_create_orders"} {
		infof("migration %s already applied, skipping", m)
	}
	infof("applying migration 0042_add_orders_index")
	time.Sleep(300 * time.Millisecond)
	errorf(`migration 0042_add_orders_index failed: pq: relation "orders_archive" does not exist`)
	fmt.Fprintln(os.Stderr, "migrate: 1 migration failed, 0 applied")
	os.Exit(1)
}

// javaMain imitates a JVM: it reads heap flags from JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS, the command
// line and _JAVA_OPTIONS (in that order, last wins, like HotSpot), sizes the heap from -Xmx or from
// MaxRAMPercentage of the container's memory limit, and fills it as a loading application would.
// A JVM does not read JAVA_OPTS: start scripts expand it into the command line (`java $JAVA_OPTS ...`).
func javaMain(args []string) {
	var opts []string
	if v := os.Getenv("JAVA_TOOL_OPTIONS"); v != "" {
		fmt.Fprintf(os.Stderr, "Picked up JAVA_TOOL_OPTIONS: %s\n", v)
		opts = append(opts, strings.Fields(v)...)
	}
	if v := os.Getenv("JDK_JAVA_OPTIONS"); v != "" {
		fmt.Fprintf(os.Stderr, "NOTE: Picked up JDK_JAVA_OPTIONS: %s\n", v)
		opts = append(opts, strings.Fields(v)...)
	}
	jar := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-version" || a == "--version" {
			fmt.Fprintln(os.Stderr, `openjdk version "17.0.12" 2024-07-16`)
			fmt.Fprintln(os.Stderr, "OpenJDK Runtime Environment (build 17.0.12+7-testbed)")
			fmt.Fprintln(os.Stderr, "OpenJDK 64-Bit Server VM (build 17.0.12+7-testbed, mixed mode, sharing)")
			return
		}
		if a == "-jar" && i+1 < len(args) {
			jar = args[i+1]
			break
		}
		if !strings.HasPrefix(a, "-") {
			jar = a
			break
		}
		opts = append(opts, a)
	}
	if v := os.Getenv("_JAVA_OPTIONS"); v != "" {
		fmt.Fprintf(os.Stderr, "Picked up _JAVA_OPTIONS: %s\n", v)
		opts = append(opts, strings.Fields(v)...)
	}
	if jar == "" {
		fmt.Fprintln(os.Stderr, "Usage: java [options] <mainclass> [args...]\n           (to execute a class)\n   or  java [options] -jar <jarfile> [args...]")
		os.Exit(1)
	}

	var xmx, xms int64
	maxRAMPct, initRAMPct := 25.0, 1.5625
	for _, o := range opts {
		var err error
		switch {
		case strings.HasPrefix(o, "-Xmx"):
			xmx, err = parseJavaSize(o[4:])
		case strings.HasPrefix(o, "-Xms"):
			xms, err = parseJavaSize(o[4:])
		case strings.HasPrefix(o, "-XX:MaxRAMPercentage="):
			maxRAMPct, err = strconv.ParseFloat(o[len("-XX:MaxRAMPercentage="):], 64)
		case strings.HasPrefix(o, "-XX:InitialRAMPercentage="):
			initRAMPct, err = strconv.ParseFloat(o[len("-XX:InitialRAMPercentage="):], 64)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "Invalid maximum heap size: %s\nError: Could not create the Java Virtual Machine.\nError: A fatal exception has occurred. Program will exit.\n", o)
			os.Exit(1)
		}
	}
	ram := containerMemory()
	if xmx == 0 {
		xmx = int64(float64(ram) * maxRAMPct / 100)
	}
	if xms == 0 {
		xms = min(xmx, int64(float64(ram)*initRAMPct/100))
	}

	mainClass := strings.TrimSuffix(filepath.Base(jar), ".jar")
	if mainClass != "" {
		mainClass = strings.ToUpper(mainClass[:1]) + mainClass[1:] + "Application"
	}
	pid := os.Getpid()
	ts := func() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }
	jlog := func(format string, args ...any) {
		fmt.Printf("%s  INFO %d --- [           main] c.e.%s : %s\n", ts(), pid, mainClass, fmt.Sprintf(format, args...))
	}
	fmt.Println()
	fmt.Println("  .   ____          _            __ _ _")
	fmt.Println(" /\\\\ / ___'_ __ _ _(_)_ __  __ _ \\ \\ \\ \\")
	fmt.Println("( ( )\\___ | '_ | '_| | '_ \\/ _` | \\ \\ \\ \\")
	fmt.Println(" \\\\/  ___)| |_)| | | | | || (_| |  ) ) ) )")
	fmt.Println("  '  |____| .__|_| |_|_| |_\\__, | / / / /")
	fmt.Println(" =========|_|==============|___/=/_/_/_/")
	fmt.Println()
	jlog("Starting %s v%s using Java 17.0.12 with PID %d (%s)", mainClass, version, pid, jar)
	jlog("JVM heap: initial %s, max %s; container memory limit %s", javaSize(xms), javaSize(xmx), javaSize(ram))

	// Fill the heap the way a loading application does; a real JVM commits heap pages as it uses them.
	const chunk = 16 << 20
	var held [][]byte
	var used int64
	for used+chunk <= xmx {
		b := make([]byte, chunk)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		used += chunk
		if used%(128<<20) == 0 {
			jlog("Loading order history into cache: %s loaded", javaSize(used))
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.KeepAlive(held)
	fmt.Fprintln(os.Stderr, `Exception in thread "main" java.lang.OutOfMemoryError: Java heap space`)
	fmt.Fprintf(os.Stderr, "\tat com.example.%s.cache.Cache.load(Cache.java:88)\n", strings.ToLower(strings.TrimSuffix(mainClass, "Application")))
	os.Exit(1)
}

func parseJavaSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	case 't', 'T':
		mult = 1 << 40
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

func javaSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dg", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%dm", n>>20)
	default:
		return fmt.Sprintf("%dk", n>>10)
	}
}

// containerMemory is what a container-aware JVM takes as physical memory: the cgroup limit if any.
func containerMemory() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(p); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < 1<<50 {
				return n
			}
		}
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		return int64(si.Totalram) * int64(si.Unit)
	}
	return 1 << 30
}
