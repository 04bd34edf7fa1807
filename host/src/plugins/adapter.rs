//! Strategies built against contract 0.1.0, called by a 0.2.0 host: their rollout state
//! lacks the weight fields, and their answers cannot set a weight, so their `both` keeps
//! meaning a split by ready pods.

use super::bindings::v0_1::types as old;
use super::types;

fn workload(w: types::Workload) -> old::Workload {
    old::Workload { replicas: w.replicas, ready: w.ready, restarts: w.restarts, unready_ms: w.unready_ms }
}

fn traffic_down(t: types::Traffic) -> old::Traffic {
    match t {
        types::Traffic::Stable => old::Traffic::Stable,
        types::Traffic::Candidate => old::Traffic::Candidate,
        types::Traffic::Both => old::Traffic::Both,
    }
}

fn traffic_up(t: old::Traffic) -> types::Traffic {
    match t {
        old::Traffic::Stable => types::Traffic::Stable,
        old::Traffic::Candidate => types::Traffic::Candidate,
        old::Traffic::Both => types::Traffic::Both,
    }
}

/// The 0.2.0 state as 0.1.0 spells it: `weight` and `exact-weights` dropped.
pub fn rollout_state(s: &types::RolloutState) -> old::RolloutState {
    old::RolloutState {
        desired_replicas: s.desired_replicas,
        stable: s.stable.map(workload),
        candidate: workload(s.candidate),
        traffic: traffic_down(s.traffic),
        step_index: s.step_index,
        time_in_step_ms: s.time_in_step_ms,
        promoted: s.promoted,
        memory: s.memory.clone(),
    }
}

/// A 0.1.0 answer as a 0.2.0 one: every 0.1.0 action exists in 0.2.0 unchanged.
pub fn step(s: old::Step) -> types::Step {
    let action = match s.action {
        old::Action::Scale(to) => types::Action::Scale(types::ScaleTo { stable: to.stable, candidate: to.candidate }),
        old::Action::SwitchTraffic(t) => types::Action::SwitchTraffic(traffic_up(t)),
        old::Action::WaitReady => types::Action::WaitReady,
        old::Action::Pause(ms) => types::Action::Pause(ms),
        old::Action::AwaitPromotion => types::Action::AwaitPromotion,
        old::Action::Done => types::Action::Done,
        old::Action::Abort(reason) => types::Action::Abort(reason),
    };
    types::Step { action, step_index: s.step_index, description: s.description, memory: s.memory }
}

pub fn plugin_info(info: old::PluginInfo) -> types::PluginInfo {
    types::PluginInfo { name: info.name, version: info.version, settings_schema: info.settings_schema }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_strategy_sees_the_state_without_weights_and_its_answers_pass_unchanged() {
        let w = types::Workload { replicas: 3, ready: 2, restarts: 1, unready_ms: 40 };
        let state = types::RolloutState {
            desired_replicas: 3,
            stable: Some(w),
            candidate: w,
            traffic: types::Traffic::Both,
            weight: Some(25),
            exact_weights: true,
            step_index: 4,
            time_in_step_ms: 9,
            promoted: true,
            memory: "m".into(),
        };
        let seen = rollout_state(&state);
        assert!(matches!(seen.traffic, old::Traffic::Both));
        assert_eq!((seen.step_index, seen.memory.as_str(), seen.candidate.ready), (4, "m", 2));
        let answer = old::Step {
            action: old::Action::SwitchTraffic(old::Traffic::Both),
            step_index: 5,
            description: "d".into(),
            memory: "n".into(),
        };
        let up = step(answer);
        assert!(matches!(up.action, types::Action::SwitchTraffic(types::Traffic::Both)));
        assert_eq!((up.step_index, up.description.as_str(), up.memory.as_str()), (5, "d", "n"));
    }
}
