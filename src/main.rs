fn main() -> std::process::ExitCode {
    threatwatch::cli::main()
}
