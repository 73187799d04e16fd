use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_tickets::Config::parse();
    let (workers, log) = (cfg.common.workers, cfg.common.log.clone());
    tix_common::service::main("tix-tickets", workers, &log, tix_tickets::build(cfg))
}
