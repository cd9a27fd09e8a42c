fn main() -> std::process::ExitCode {
    unloop_cli::main()
}
