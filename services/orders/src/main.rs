use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = tix_orders::Config::parse();
    let log = cfg.common.log.clone();
    tix_common::service::run("tix-orders", &log, tix_orders::build(cfg)).await
}
