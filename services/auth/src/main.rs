use clap::Parser;

fn main() -> std::process::ExitCode {
    let cfg = tix_auth::Config::parse();
    let (workers, log, format) = (
        cfg.common.workers,
        cfg.common.log.clone(),
        cfg.common.log_format,
    );
    tix_common::service::main("tix-auth", workers, &log, format, tix_auth::build(cfg))
}
