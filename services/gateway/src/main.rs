use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = tix_gateway::Config::parse();
    let log = cfg.log.clone();
    tix_common::service::run("tix-gateway", &log, tix_gateway::build(cfg)).await
}
