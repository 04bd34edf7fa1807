//! The `strategy` world's exports, over the pure logic in `bluegreen.rs`.

mod bluegreen;

strategy_common::strategy_plugin!(bluegreen);
