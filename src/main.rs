//! The `ferry` binary: hands the command line to the cli layer and exits with its code.

fn main() {
    std::process::exit(ferry::cli::main());
}
