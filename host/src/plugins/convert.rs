//! Between the host's domain types and the WIT records plugins see.

use super::types;
use crate::config::Config;
use crate::domain::{self, Violation};

pub fn violation(v: types::Violation) -> Violation {
    Violation { field: v.field, code: v.code, message: v.message }
}

pub fn platform(config: &Config) -> types::Platform {
    types::Platform {
        catalog: config
            .catalog
            .iter()
            .map(|c| types::CatalogEntry {
                tomcat: c.tomcat.clone(),
                jdk: c.jdk.clone(),
                base_image: c.base_image.clone(),
                user: c.user.clone(),
            })
            .collect(),
    }
}

fn amounts(a: &domain::ResourceAmounts) -> types::ResourceAmounts {
    types::ResourceAmounts { cpu: a.cpu.clone(), memory: a.memory.clone() }
}

pub fn env_spec(env: &domain::EnvSpec, node_num: Option<String>) -> types::EnvSpec {
    types::EnvSpec {
        name: env.name.clone(),
        tomcat: env.tomcat.to_string(),
        jdk: env.jdk.to_string(),
        replicas: env.replicas,
        node_num,
        jvm_options: env.jvm_options.clone(),
        env: env.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        resources: types::Resources { requests: amounts(&env.resources.requests), limits: amounts(&env.resources.limits) },
        context_path: env.context_path.clone(),
    }
}

pub fn war_facts(war: &crate::wars::WarRecord) -> types::WarFacts {
    use crate::wars::ServletApi;
    types::WarFacts {
        app: war.app.clone(),
        file: war.file.clone(),
        size: war.size,
        sha256: war.sha256.clone(),
        servlet_api: match war.servlet_api {
            ServletApi::Javax => types::ServletApi::Javax,
            ServletApi::Jakarta => types::ServletApi::Jakarta,
            ServletApi::Mixed => types::ServletApi::Mixed,
            ServletApi::Unknown => types::ServletApi::Unknown,
        },
        has_web_xml: war.has_web_xml,
        entries: war.entries as u32,
    }
}

fn traffic(t: domain::Traffic) -> types::Traffic {
    match t {
        domain::Traffic::Stable => types::Traffic::Stable,
        domain::Traffic::Candidate => types::Traffic::Candidate,
        domain::Traffic::Both => types::Traffic::Both,
    }
}

fn workload(w: &domain::Workload) -> types::Workload {
    types::Workload { replicas: w.replicas, ready: w.ready, restarts: w.restarts, unready_ms: w.unready_ms }
}

pub fn rollout_state(s: &domain::RolloutState) -> types::RolloutState {
    types::RolloutState {
        desired_replicas: s.desired_replicas,
        stable: s.stable.as_ref().map(workload),
        candidate: workload(&s.candidate),
        traffic: traffic(s.traffic),
        weight: s.weight,
        exact_weights: s.exact_weights,
        step_index: s.step_index,
        time_in_step_ms: s.time_in_step_ms,
        promoted: s.promoted,
        memory: s.memory.clone(),
    }
}

pub fn step(s: types::Step) -> domain::Step {
    use domain::Action;
    let action = match s.action {
        types::Action::Scale(to) => Action::Scale(domain::ScaleTo { stable: to.stable, candidate: to.candidate }),
        types::Action::SwitchTraffic(t) => Action::SwitchTraffic(match t {
            types::Traffic::Stable => domain::Traffic::Stable,
            types::Traffic::Candidate => domain::Traffic::Candidate,
            types::Traffic::Both => domain::Traffic::Both,
        }),
        types::Action::SetWeight(percent) => Action::SetWeight(percent),
        types::Action::WaitReady => Action::WaitReady,
        types::Action::Pause(ms) => Action::Pause(ms),
        types::Action::AwaitPromotion => Action::AwaitPromotion,
        types::Action::Done => Action::Done,
        types::Action::Abort(reason) => Action::Abort(reason),
    };
    domain::Step { action, step_index: s.step_index, description: s.description, memory: s.memory }
}
