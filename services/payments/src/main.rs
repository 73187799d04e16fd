use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_payments::Config::parse();
    let (workers, log) = (cfg.common.workers, cfg.common.log.clone());
    tix_common::service::main("tix-payments", workers, &log, tix_payments::build(cfg))
}
