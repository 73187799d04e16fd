# syntax=docker/dockerfile:1
#
# One image with every tix server binary; the command picks the process at run time:
#
#   docker build -t tix:dev .
#   docker run --rm tix:dev tix-bus --help
#   docker run --rm tix:dev tix-orders --help
#
# Why one image and not one per binary: they are built together by one `cargo build`
# (same lockfile, same sources), deployed together (the bus protocol upgrade is
# stop-the-stack, docs/bus.md), and weigh little next to the shared base; one tag to build,
# scan, sign and roll out. docs/deploy.md has the rest.
#
# Runtime base: distroless/cc (glibc, libgcc, CA certificates; no shell, no package
# manager), the smallest base that runs Rust binaries linked against glibc. Its Debian 12
# glibc matches the bookworm builder's. The image runs as uid/gid 65532 ("nonroot").

# ---- build: the release binaries, once, exactly as Cargo.lock says ----
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target dir are BuildKit caches, so a rebuild after a source change
# recompiles only what changed; the binaries are copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        -p tix-bus -p tix-auth -p tix-tickets -p tix-orders -p tix-payments \
        -p tix-expiration -p tix-gateway -p tix-cli --bins \
 && install -d /out/bin \
 && install -m 0755 \
        target/release/tix-bus target/release/tix-auth target/release/tix-tickets \
        target/release/tix-orders target/release/tix-payments target/release/tix-expiration \
        target/release/tix-gateway target/release/tix \
        /out/bin/ \
 && rustc --edition 2021 -C opt-level=s -C strip=symbols -C panic=abort \
        -o /out/bin/tix-probe deploy/docker/tix-probe.rs \
 && install -d /out/data

# ---- runtime ----
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# The volume's mount point, owned by the runtime user, so a new named volume mounted there
# starts out writable by that user (Docker copies the image's directory into an empty
# volume). The data dir is a directory inside it, which each process creates 0700 on its
# first start: private whatever mode the volume's root has (a Kubernetes volume's is
# group-writable), so no process warns about it.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# Containers are reached over their network, never on loopback: every server listens on
# all IPv4 addresses (an IPv6-only network needs TIX_HOST=::, TIX_BUS_BIND=tcp://[::]:5555).
# The bus's HTTP port (/healthz, /metrics) is on too, for the HEALTHCHECK and Prometheus;
# keep 5556 off any public network (docs/bus.md, "Metrics").
# SQLite spills big sorts and index builds to a temp file; the root filesystem is
# read-only in compose and Kubernetes, so its temp files go on the data volume.
ENV TIX_DATA_DIR=/data/tix \
    SQLITE_TMPDIR=/data \
    TIX_HOST=0.0.0.0 \
    TIX_BUS_BIND=tcp://0.0.0.0:5555 \
    TIX_BUS_METRICS_ADDR=0.0.0.0:5556
VOLUME ["/data"]
# gateway; auth, tickets, orders, payments, expiration; bus (ZeroMQ) and its HTTP port
EXPOSE 8080 4001 4002 4003 4004 4005 5555 5556
# GET /healthz of whichever tix process is PID 1 (tix-probe works out its port).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["tix-probe"]
CMD ["tix", "--help"]
