use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = tix_expiration::Config::parse();
    let log = cfg.common.log.clone();
    tix_common::service::run("tix-expiration", &log, tix_expiration::build(cfg)).await
}
