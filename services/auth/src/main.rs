use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_auth::Config::parse();
    let (workers, log) = (cfg.common.workers, cfg.common.log.clone());
    tix_common::service::main("tix-auth", workers, &log, tix_auth::build(cfg))
}
