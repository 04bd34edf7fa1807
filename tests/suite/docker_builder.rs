//! The Docker Engine builder (bollard) against podman's Docker-compatible API service,
//! pushing to a real docker-registry: the Dockerfiles the oci builder refuses.

use crate::support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::*;
use warship_host::config::RegistryConfig;
use warship_host::domain::Platform;
use warship_host::image::{BuildEvent, BuildJob, Builder, ContextFile, DockerBuilder, OciBuilder};
use warship_host::registry::RegistryClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dockerfile_that_runs_things_builds_through_the_engine_and_lands_in_the_registry() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let engine = PodmanService::start(&[&registry.addr]).await;
    let config = RegistryConfig { push: registry.addr.clone(), pull: registry.addr.clone(), insecure: true, ..RegistryConfig::default() };
    let client = RegistryClient::from_config(&config).unwrap();
    let dockerfile = format!(
        "FROM {}/warship/tomcat:10.1-jdk17\nUSER root\nRUN echo \"made by RUN\" > /usr/local/tomcat/marker.txt\nUSER tomcat\n\
         LABEL built.with=docker\nCOPY sample.war /usr/local/tomcat/webapps/ROOT.war\n",
        registry.addr
    );
    let job = BuildJob {
        dockerfile,
        context: BTreeMap::from([("sample.war".to_owned(), ContextFile::from_path(fixture("sample.war")).unwrap())]),
        target: client.resolve("team/app:1").unwrap(),
        build_args: BTreeMap::new(),
    };

    let oci = OciBuilder::new(client.clone(), Platform::parse("linux/amd64").unwrap());
    let refused = oci.build(&job, Arc::new(|_| {})).await.unwrap_err();
    assert!(refused.to_string().starts_with("Dockerfile line 3: RUN is not supported"), "{refused}");
    assert!(refused.to_string().contains("build.builder = \"docker\""), "{refused}");

    let docker = DockerBuilder::connect(&engine.host, client.clone(), None, "linux/amd64").unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let built = docker.build(&job, Arc::new(move |e| sink.lock().unwrap().push(e))).await.unwrap();
    let events = events.lock().unwrap().clone();
    let output: Vec<&str> = events.iter().filter_map(|e| if let BuildEvent::Output { line } = e { Some(line.as_str()) } else { None }).collect();
    assert!(output.iter().any(|l| l.contains("RUN echo")), "the engine's output is streamed: {output:?}");
    assert!(events.iter().any(|e| matches!(e, BuildEvent::Bytes { what, .. } if what == "build context")));

    let session = client.session(&registry.addr, vec!["repository:team/app:pull".into()], Arc::new(|_| {}));
    assert_eq!(session.manifest("team/app", "1").await.unwrap().digest, built.digest);
    let manifest: Value = serde_json::from_slice(&session.manifest("team/app", "1").await.unwrap().bytes).unwrap();
    let config: Value = serde_json::from_slice(&session.blob("team/app", manifest["config"]["digest"].as_str().unwrap(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(config["config"]["Labels"]["built.with"], "docker");
    assert!(manifest["layers"].as_array().unwrap().len() >= 4, "base layers, the RUN layer, the COPY layer: {manifest}");

    // The marker RUN wrote is in the image that runs.
    let container = run_container(&format!("{}/team/app@{}", registry.addr, built.digest));
    let marker = podman().args(["exec", &container.name, "cat", "/usr/local/tomcat/marker.txt"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&marker.stdout).trim(), "made by RUN");
    let page = container.get_when_up("/hello", std::time::Duration::from_secs(120)).await;
    assert!(page.contains("Hello"), "{page}");
    drop(container);
    // What the engine built and pulled stays in its store otherwise (vfs: full copies).
    remove_images(&[&built.tagged, &format!("{}/warship/tomcat:10.1-jdk17", registry.addr)]);
    // And the untagged images of the engine's build steps (alone in its test binary, so
    // no other test's image can be caught).
    let _ = podman().args(["image", "prune", "-f"]).output();
}
