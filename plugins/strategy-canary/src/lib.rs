//! The `strategy` world's exports, over the pure logic in `canary.rs`.

mod canary;

strategy_common::strategy_plugin!(canary);
