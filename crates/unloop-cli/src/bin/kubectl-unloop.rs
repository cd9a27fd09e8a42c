//! The same program under the name kubectl looks for, so `kubectl unloop ...` works.
fn main() -> std::process::ExitCode {
    unloop_cli::main()
}
