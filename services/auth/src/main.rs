use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_auth::Config::parse();
    let process = cfg.common.process();
    tix_common::service::main("tix-auth", process, tix_auth::build(cfg))
}
