/// See `threatwatch::allocator` for why mimalloc and how it is tuned.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    threatwatch::allocator::tune();
    threatwatch::cli::main()
}
