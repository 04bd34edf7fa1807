//! The `strategy` world's exports, over the pure logic in `rolling.rs`.

mod rolling;

strategy_common::strategy_plugin!(rolling);
