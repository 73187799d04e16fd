use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_orders::Config::parse();
    let (workers, log) = (cfg.common.workers, cfg.common.log.clone());
    tix_common::service::main("tix-orders", workers, &log, tix_orders::build(cfg))
}
