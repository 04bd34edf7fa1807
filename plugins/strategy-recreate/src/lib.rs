//! The `strategy` world's exports, over the pure logic in `recreate.rs`.

mod recreate;

strategy_common::strategy_plugin!(recreate);
