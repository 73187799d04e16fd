use clap::Parser;

// mimalloc: a ticket POST takes 9 % fewer instructions with it than with glibc's malloc
// (docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cfg = tix_auth::Config::parse();
    let (workers, log) = (cfg.common.workers, cfg.common.log.clone());
    tix_common::service::main("tix-auth", workers, &log, tix_auth::build(cfg))
}
