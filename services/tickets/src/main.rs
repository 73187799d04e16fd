use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = tix_tickets::Config::parse();
    let log = cfg.common.log.clone();
    tix_common::service::run("tix-tickets", &log, tix_tickets::build(cfg)).await
}
