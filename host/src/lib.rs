//! warship: self-service deployment of Java web applications on Kubernetes.
//!
//! The composition root is [`server::Server`]; the HTTP edge is [`http::app`].

pub mod cli;
pub mod cluster;
pub mod config;
pub mod console;
pub mod deploys;
pub mod domain;
pub mod envs;
pub mod http;
pub mod image;
pub mod images;
pub mod jobs;
pub mod journal;
pub mod kit;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod users;
pub mod wars;
pub mod webhooks;
pub mod plugins;
pub mod registry;
