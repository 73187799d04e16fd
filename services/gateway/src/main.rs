use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_gateway::Config::parse();
    let runtime = if cfg.workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.workers.into())
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tix-gateway: cannot start its runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let log = cfg.log.clone();
    runtime.block_on(tix_common::service::run(
        "tix-gateway",
        &log,
        tix_gateway::build(cfg),
    ))
}
