use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = tix_auth::Config::parse();
    let log = cfg.common.log.clone();
    tix_common::service::run("tix-auth", &log, tix_auth::build(cfg)).await
}
