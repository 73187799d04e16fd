use clap::Parser;
use tix_payments::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    tix_common::config::init_tracing(&cfg.common.log);
    let app = Application::build(cfg).await?;
    // Tests and scripts read this line to learn the port.
    println!("tix-payments listening on http://{}", app.addr());
    app.run_until_stopped(tix_common::http::shutdown_signal())
        .await
}
