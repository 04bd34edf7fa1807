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
    /// The container was killed for using more memory than its limit.
    OomKilled,
    /// The container runs but its readiness probe fails.
    Readiness,
    /// No node has the cpu or memory the pods request.
    Unschedulable,
    /// Kubernetes refused to create the pods: the namespace's quota or limits, mostly.
    Refused,
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
    /// The env's memory limit (`512Mi`), if it sets one.
    pub memory_limit: Option<&'a str>,
    /// Why Kubernetes refused to create some of the release's pods (its Deployment's
    /// `ReplicaFailure`), if it did.
    pub refused: Option<&'a str>,
    pub jvm_options: &'a str,
}

/// What the pods said besides their status: the warnings Kubernetes recorded (pod name →
/// newest first) and the last line a crashed container wrote (pod name → line).
pub struct Evidence<'a> {
    pub warnings: &'a dyn Fn(&str) -> Vec<String>,
    pub last_words: &'a dyn Fn(&str) -> Option<String>,
}

/// The cause that best explains why `pods` (one release's) are not ready.
pub fn diagnose(pods: &[&PodView], evidence: &Evidence, context: &Context) -> Diagnosis {
    let warnings = evidence.warnings;
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
    if let Some(pod) = first(&|p| p.last_exit_reason.as_deref() == Some("OOMKilled")) {
        return Diagnosis { cause: Cause::OomKilled, message: out_of_memory(pod, context) };
    }
    // A container that exited with an error counts as crashing even while its next run
    // has just started.
    let crashed = |p: &PodView| p.restarts > 0 && (!p.running || p.last_exit_code.is_some_and(|code| code != 0));
    if let Some(pod) = first(&|p| p.waiting.as_deref() == Some("CrashLoopBackOff") || crashed(p)) {
        let exit = pod.last_exit_code.map_or_else(String::new, |code| format!(", last exit code {code}"));
        let said = (evidence.last_words)(&pod.name).map(|line| format!("; it last said: {line}")).unwrap_or_default();
        return Diagnosis {
            cause: Cause::CrashLoop,
            message: format!(
                "the app keeps crashing: pod {}'s container restarted {} times{exit}{said}; read the whole log with GET /api/v1/envs/{}/logs?pod={}",
                pod.name, pod.restarts, context.env, pod.name
            ),
        };
    }
    if let Some(said) = context.refused {
        let advice = if said.contains("exceeded quota") {
            "; lower the env's replicas or resources.requests, or ask an admin to raise [kubernetes.quota] in platform.toml"
        } else if said.contains("per Container") {
            "; keep the env's resources within the namespace's limits, or ask an admin to raise [kubernetes.limits] in platform.toml"
        } else {
            ""
        };
        return Diagnosis {
            cause: Cause::Refused,
            message: format!(
                "Kubernetes refused to create the pods ({}){advice}",
                said.trim_end_matches('.')
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
                "the app runs but is not ready: pod {}'s readiness probe on {} fails ({}); check that the app starts and answers 2xx or 3xx at that path, or set the env's health_path to one that does",
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

/// What the JVM asked of memory against the limit, and what to change.
fn out_of_memory(pod: &PodView, context: &Context) -> String {
    let limit = context.memory_limit.unwrap_or("the namespace's default");
    let heap = context.jvm_options.split_whitespace().rev().find_map(|o| o.strip_prefix("-Xmx")).map(str::to_owned);
    let arithmetic = match (&heap, context.memory_limit.and_then(mebibytes)) {
        (Some(heap), Some(limit_mib)) => match mebibytes(heap) {
            Some(heap_mib) => format!(
                "its heap alone may take {heap} (-Xmx{heap}) of the {limit} limit, and the JVM needs about {JVM_OVERHEAD_MIB}Mi more for metaspace, threads, code and Tomcat: {} in all against {limit_mib}Mi",
                format_args!("{}Mi", heap_mib + JVM_OVERHEAD_MIB)
            ),
            None => format!("its heap (-Xmx{heap}) plus about {JVM_OVERHEAD_MIB}Mi for metaspace, threads and Tomcat did not fit in {limit}"),
        },
        (None, _) => format!(
            "with no -Xmx the JVM sizes its heap from the limit, and heap plus about {JVM_OVERHEAD_MIB}Mi for metaspace, threads and Tomcat did not fit in {limit}"
        ),
        (Some(heap), None) => format!("its heap (-Xmx{heap}) plus about {JVM_OVERHEAD_MIB}Mi for metaspace, threads and Tomcat did not fit in {limit}"),
    };
    let advice = match heap.as_deref().and_then(mebibytes) {
        Some(heap_mib) => format!(
            "raise resources.limits.memory to at least {}Mi, or lower -Xmx in jvm_options",
            heap_mib + JVM_OVERHEAD_MIB
        ),
        None => format!("raise resources.limits.memory (Tomcat needs at least {}Mi), or set -Xmx in jvm_options well under the limit", 2 * JVM_OVERHEAD_MIB),
    };
    format!(
        "pod {} was killed for using more memory than its limit (OOMKilled, restarted {} times): {arithmetic}; {advice}",
        pod.name, pod.restarts
    )
}

/// Memory a Tomcat JVM takes besides its heap, in MiB (metaspace, code cache, thread stacks,
/// Tomcat's own buffers), as measured on a small app.
const JVM_OVERHEAD_MIB: u64 = 128;

/// A Kubernetes memory quantity or -Xmx value in MiB (`512Mi`, `1Gi`, `512m`, `1g`, `256M`).
fn mebibytes(quantity: &str) -> Option<u64> {
    let digits = quantity.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    match &quantity[digits.len()..] {
        "Gi" | "g" | "G" => Some(n * 1024),
        "Mi" | "m" | "M" => Some(n),
        "Ki" | "k" | "K" => Some(n / 1024),
        "" => Some(n / (1024 * 1024)),
        _ => None,
    }
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
            last_exit_reason: None,
            running: false,
            reason: None,
            message: None,
            unschedulable: None,
            unready_since_ms: Some(0),
        }
    }

    const CONTEXT: Context = Context {
        image: "registry.local:5000/alice/shop@sha256:ab",
        probe_path: "/shop",
        env: "shop",
        memory_limit: Some("256Mi"),
        refused: None,
        jvm_options: "-Xms64m -Xmx512m",
    };

    fn diagnosed(pods: &[PodView], warnings: &[(&str, &str)]) -> Diagnosis {
        let pods: Vec<&PodView> = pods.iter().collect();
        let warnings = |name: &str| warnings.iter().filter(|(p, _)| *p == name).map(|(_, w)| w.to_string()).collect();
        let last_words = |name: &str| (name == "shop-r2-a").then(|| "Error: Could not create the Java Virtual Machine.".to_owned());
        diagnose(&pods, &Evidence { warnings: &warnings, last_words: &last_words }, &CONTEXT)
    }

    #[test]
    fn an_oom_kill_does_the_heap_and_limit_arithmetic() {
        let mut p = pod("shop-r2-b");
        p.node = Some("vm".into());
        p.waiting = Some("CrashLoopBackOff".into());
        p.restarts = 2;
        p.last_exit_code = Some(137);
        p.last_exit_reason = Some("OOMKilled".into());
        let d = diagnosed(&[p], &[]);
        assert_eq!(d.cause, Cause::OomKilled);
        assert_eq!(
            d.message,
            "pod shop-r2-b was killed for using more memory than its limit (OOMKilled, restarted 2 times): its heap alone may take 512m (-Xmx512m) of the 256Mi limit, and the JVM needs about 128Mi more for metaspace, threads, code and Tomcat: 640Mi in all against 256Mi; raise resources.limits.memory to at least 640Mi, or lower -Xmx in jvm_options"
        );
    }

    #[test]
    fn quantities_read_as_mebibytes() {
        assert_eq!(mebibytes("1Gi"), Some(1024));
        assert_eq!(mebibytes("512m"), Some(512));
        assert_eq!(mebibytes("268435456"), Some(256));
        assert_eq!(mebibytes("1.5Gi"), None);
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
            "the app keeps crashing: pod shop-r2-a's container restarted 5 times, last exit code 1; it last said: Error: Could not create the Java Virtual Machine.; read the whole log with GET /api/v1/envs/shop/logs?pod=shop-r2-a"
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
    fn pods_the_quota_refused_say_so_and_what_to_do() {
        let said = "pods \"shop-r2-7c9-x\" is forbidden: exceeded quota: warship, requested: requests.cpu=9, used: requests.cpu=100m, limited: requests.cpu=8";
        let context = Context {
            refused: Some(said),
            ..CONTEXT
        };
        let mut waiting = pod("shop-r2-a");
        waiting.unschedulable = Some("0/3 nodes are available: 3 Insufficient cpu.".into());
        let d = diagnose(
            &[&waiting],
            &Evidence {
                warnings: &|_| Vec::new(),
                last_words: &|_| None,
            },
            &context,
        );
        assert_eq!(d.cause, Cause::Refused);
        assert_eq!(
            d.message,
            format!("Kubernetes refused to create the pods ({said}); lower the env's replicas or resources.requests, or ask an admin to raise [kubernetes.quota] in platform.toml")
        );
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
