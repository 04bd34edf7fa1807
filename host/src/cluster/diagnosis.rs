//! Why a release's pods are not ready, in plain words: read from what the pods say
//! (waiting reasons, restarts, eviction, the scheduler's verdict) and the warnings
//! Kubernetes recorded about them, most telling cause first.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::PodView;

/// What keeps pods from being ready. Stable names: clients and tests match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The kubelet cannot pull the image (registry down, wrong address, no such image).
    ImagePull,
    /// The container starts and exits, again and again.
    CrashLoop,
    /// The container runs but its readiness probe fails.
    Readiness,
    /// No node has the cpu or memory the pods request.
    Unschedulable,
    /// The nodes are out of disk: pods evicted for it, or nodes tainted with disk pressure.
    NodeOutOfDisk,
    /// Pods evicted for another reason.
    Evicted,
    /// None of the above could be told; the pods are simply not ready yet.
    NotReady,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub cause: Cause,
    /// One sentence naming the pod and what to do.
    pub message: String,
}

/// What the diagnosis reads besides the pods.
pub struct Context<'a> {
    /// The image the pods run.
    pub image: &'a str,
    /// The path the readiness probe asks.
    pub probe_path: &'a str,
    pub env: &'a str,
}

/// The cause that best explains why `pods` (one release's) are not ready, given the
/// warnings recorded for some of them (pod name → newest first).
pub fn diagnose(pods: &[&PodView], warnings: &dyn Fn(&str) -> Vec<String>, context: &Context) -> Diagnosis {
    let unready: Vec<&PodView> = pods.iter().copied().filter(|p| !p.ready && !p.terminating).collect();
    let first = |test: &dyn Fn(&PodView) -> bool| unready.iter().copied().find(|p| test(p));
    let newest_warning = |pod: &PodView, reason: &str| {
        warnings(&pod.name).into_iter().find(|w| w.starts_with(reason)).map(|w| w[reason.len()..].trim_start_matches(':').trim().to_owned())
    };

    if let Some(pod) = first(&|p| p.reason.as_deref() == Some("Evicted")) {
        let said = pod.message.clone().unwrap_or_default();
        let disk = ["ephemeral-storage", "disk", "nodefs", "imagefs"].iter().any(|w| said.contains(w));
        return if disk {
            Diagnosis {
                cause: Cause::NodeOutOfDisk,
                message: format!(
                    "node {} ran out of disk and evicted pod {} ({}); free disk on the nodes or lower what the app writes",
                    pod.node.as_deref().unwrap_or("?"),
                    pod.name,
                    said.trim_end_matches('.')
                ),
            }
        } else {
            Diagnosis { cause: Cause::Evicted, message: format!("pod {} was evicted: {}", pod.name, said.trim_end_matches('.')) }
        };
    }
    const PULL: [&str; 5] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"];
    if let Some(pod) = first(&|p| p.waiting.as_deref().is_some_and(|w| PULL.contains(&w))) {
        let said = pod.waiting_message.clone().or_else(|| newest_warning(pod, "Failed")).unwrap_or_default();
        let registry = context.image.split('/').next().unwrap_or_default();
        return Diagnosis {
            cause: Cause::ImagePull,
            message: format!(
                "the nodes cannot pull the image {} (pod {}: {}{}); check that the registry {registry} is up and that nodes reach it at that address (registry.pull_address in platform.toml)",
                context.image,
                pod.name,
                pod.waiting.as_deref().unwrap_or_default(),
                if said.is_empty() { String::new() } else { format!(", {}", said.trim_end_matches('.')) },
            ),
        };
    }
    if let Some(pod) = first(&|p| p.waiting.as_deref() == Some("CrashLoopBackOff") || (p.restarts > 0 && !p.running)) {
        let exit = pod.last_exit_code.map_or_else(String::new, |code| format!(", last exit code {code}"));
        return Diagnosis {
            cause: Cause::CrashLoop,
            message: format!(
                "the app keeps crashing: pod {}'s container restarted {} times{exit}; read why with GET /api/v1/envs/{}/logs?pod={}",
                pod.name, pod.restarts, context.env, pod.name
            ),
        };
    }
    if let Some(pod) = first(&|p| p.node.is_none() && p.unschedulable.is_some()) {
        let said = pod.unschedulable.as_deref().unwrap_or_default().trim_end_matches('.');
        let (cause, advice) = if said.contains("disk-pressure") {
            (Cause::NodeOutOfDisk, "the nodes are out of disk; free disk on them or add nodes")
        } else if said.contains("Insufficient") {
            (Cause::Unschedulable, "lower the env's resources.requests or add nodes")
        } else {
            (Cause::Unschedulable, "check the nodes' taints and capacity")
        };
        let what = ["cpu", "memory"].into_iter().filter(|r| said.contains(&format!("Insufficient {r}"))).collect::<Vec<_>>().join(" and ");
        let lead = if what.is_empty() { "no node can run the pods".to_owned() } else { format!("not enough {what}: no node can run the pods") };
        return Diagnosis { cause, message: format!("{lead} ({said}); {advice}") };
    }
    if let Some(pod) = first(&|p| p.running) {
        let said = newest_warning(pod, "Unhealthy").unwrap_or_else(|| "it does not answer yet".into());
        return Diagnosis {
            cause: Cause::Readiness,
            message: format!(
                "the app runs but is not ready: pod {}'s readiness probe on {} fails ({}); check that the app starts and answers 2xx at that path",
                pod.name,
                context.probe_path,
                said.trim_end_matches('.')
            ),
        };
    }
    let message = match unready.first() {
        None => "the pods are not there yet".to_owned(),
        Some(pod) => match (&pod.node, &pod.waiting) {
            (None, _) => format!("pod {} is not scheduled yet", pod.name),
            (Some(node), Some(waiting)) => format!("pod {} on {node} is waiting: {waiting}", pod.name),
            (Some(node), None) => format!("pod {} on {node} is {} and not ready", pod.name, pod.phase),
        },
    };
    Diagnosis { cause: Cause::NotReady, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> PodView {
        PodView {
            name: name.into(),
            release: Some(2),
            phase: "Pending".into(),
            ready: false,
            restarts: 0,
            node: None,
            terminating: false,
            waiting: None,
            waiting_message: None,
            last_exit_code: None,
            running: false,
            reason: None,
            message: None,
            unschedulable: None,
            unready_since_ms: Some(0),
        }
    }

    const CONTEXT: Context = Context { image: "registry.local:5000/alice/shop@sha256:ab", probe_path: "/shop", env: "shop" };

    fn diagnosed(pods: &[PodView], warnings: &[(&str, &str)]) -> Diagnosis {
        let pods: Vec<&PodView> = pods.iter().collect();
        let warnings = |name: &str| warnings.iter().filter(|(p, _)| *p == name).map(|(_, w)| w.to_string()).collect();
        diagnose(&pods, &warnings, &CONTEXT)
    }

    #[test]
    fn an_image_that_cannot_be_pulled_names_the_registry() {
        let mut p = pod("shop-r2-a");
        p.node = Some("kwok-0".into());
        p.waiting = Some("ImagePullBackOff".into());
        p.waiting_message = Some("Back-off pulling image \"registry.local:5000/alice/shop@sha256:ab\"".into());
        let d = diagnosed(&[p], &[]);
        assert_eq!(d.cause, Cause::ImagePull);
        assert!(d.message.contains("registry registry.local:5000 is up"), "{}", d.message);
        assert!(d.message.contains("ImagePullBackOff, Back-off pulling image"), "{}", d.message);
    }

    #[test]
    fn a_crash_loop_gives_restarts_exit_code_and_where_to_read_logs() {
        let mut p = pod("shop-r2-a");
        p.node = Some("kwok-0".into());
        p.phase = "Running".into();
        p.waiting = Some("CrashLoopBackOff".into());
        p.restarts = 5;
        p.last_exit_code = Some(1);
        let d = diagnosed(&[p], &[]);
        assert_eq!(d.cause, Cause::CrashLoop);
        assert_eq!(
            d.message,
            "the app keeps crashing: pod shop-r2-a's container restarted 5 times, last exit code 1; read why with GET /api/v1/envs/shop/logs?pod=shop-r2-a"
        );
    }

    #[test]
    fn a_failing_probe_quotes_the_kubelet() {
        let mut p = pod("shop-r2-a");
        p.node = Some("kwok-0".into());
        p.phase = "Running".into();
        p.running = true;
        let d = diagnosed(&[p], &[("shop-r2-a", "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503")]);
        assert_eq!(d.cause, Cause::Readiness);
        assert!(d.message.contains("readiness probe on /shop fails (Readiness probe failed: HTTP probe failed with statuscode: 503)"), "{}", d.message);
    }

    #[test]
    fn unschedulable_pods_say_what_is_missing() {
        let mut p = pod("shop-r2-a");
        p.unschedulable = Some("0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory.".into());
        let d = diagnosed(&[p], &[]);
        assert_eq!(d.cause, Cause::Unschedulable);
        assert!(d.message.starts_with("not enough cpu and memory: no node can run the pods (0/3 nodes are available"), "{}", d.message);
        let mut tainted = pod("shop-r2-b");
        tainted.unschedulable =
            Some("0/3 nodes are available: 3 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }.".into());
        assert_eq!(diagnosed(&[tainted], &[]).cause, Cause::NodeOutOfDisk);
    }

    #[test]
    fn eviction_for_disk_outranks_everything_else() {
        let mut evicted = pod("shop-r2-a");
        evicted.node = Some("kwok-1".into());
        evicted.phase = "Failed".into();
        evicted.reason = Some("Evicted".into());
        evicted.message = Some("The node was low on resource: ephemeral-storage. ".into());
        let mut waiting = pod("shop-r2-b");
        waiting.unschedulable = Some("0/3 nodes are available: 3 Insufficient cpu.".into());
        let d = diagnosed(&[waiting, evicted], &[]);
        assert_eq!(d.cause, Cause::NodeOutOfDisk);
        assert!(d.message.starts_with("node kwok-1 ran out of disk and evicted pod shop-r2-a (The node was low on resource: ephemeral-storage"), "{}", d.message);
    }

    #[test]
    fn ready_and_terminating_pods_are_not_blamed() {
        let mut ready = pod("shop-r2-a");
        ready.ready = true;
        ready.waiting = Some("CrashLoopBackOff".into());
        let mut leaving = pod("shop-r2-b");
        leaving.terminating = true;
        leaving.waiting = Some("ErrImagePull".into());
        let d = diagnosed(&[ready, leaving, pod("shop-r2-c")], &[]);
        assert_eq!(d, Diagnosis { cause: Cause::NotReady, message: "pod shop-r2-c is not scheduled yet".into() });
    }
}
