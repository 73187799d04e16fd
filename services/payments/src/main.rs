use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = tix_payments::Config::parse();
    let log = cfg.common.log.clone();
    tix_common::service::run("tix-payments", &log, tix_payments::build(cfg)).await
}
