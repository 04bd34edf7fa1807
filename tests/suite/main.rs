//! Every end-to-end suite in one test binary: one link, shared helpers compiled once.
//! Each module is a flow against real parts; `cargo test --test suite deploys::` runs one.

mod support;

mod admin_users;
mod api;
mod canary_weights;
mod cli;
mod cli_oneshot;
mod console;
mod cors;
mod console_bench;
mod console_browser;
mod deploys;
mod docker_builder;
mod etcd_tls;
mod flow;
mod fuzz;
mod grey_releases;
mod helm;
mod images;
mod openapi_clients;
mod partition;
mod plugin_kit;
mod plugin_sandbox;
mod plugins;
mod real_pods;
mod registry;
mod scale_out;
mod scale_out_bench;
mod servlet_api;
mod slow_uploads;
mod store_conformance;
mod strategy_simulator;
mod tenancy;
mod uploads;
mod war_inspection;
mod war_storage;
mod webhooks;
mod zero_downtime;
