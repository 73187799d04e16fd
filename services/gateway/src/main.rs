use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_gateway::Config::parse();
    let (workers, log) = (cfg.workers, cfg.log.clone());
    tix_common::service::main("tix-gateway", workers, &log, tix_gateway::build(cfg))
}
