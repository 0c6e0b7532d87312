//! `server`: the reference fork-per-connection HTTP/1.1 gateway server.
//! All of it lives in the library; see its crate docs for the layout.

fn main() -> std::process::ExitCode {
    reference_server::main_with_args(std::env::args_os())
}
