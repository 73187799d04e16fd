use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_expiration::Config::parse();
    let (workers, log) = (cfg.common.workers, cfg.common.log.clone());
    tix_common::service::main("tix-expiration", workers, &log, tix_expiration::build(cfg))
}
