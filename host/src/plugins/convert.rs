//! Between the host's domain types and the WIT records plugins see.

use super::types;
use crate::config::Config;
use crate::validation::Violation;

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

fn amounts(a: &crate::envs::ResourceAmounts) -> types::ResourceAmounts {
    types::ResourceAmounts { cpu: a.cpu.clone(), memory: a.memory.clone() }
}

pub fn env_spec(env: &crate::envs::EnvSpec, node_num: Option<String>) -> types::EnvSpec {
    types::EnvSpec {
        name: env.name.clone(),
        tomcat: env.tomcat.clone(),
        jdk: env.jdk.clone(),
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
