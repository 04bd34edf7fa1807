//! The `warship` CLI end to end: the real binary as a client of a real `warship serve`
//! (with the real registry and control plane behind it), from `login` to a promoted
//! canary and a rollback; its JSON output parsed, its one-line-per-event output when
//! not on a terminal, its exit codes and error words, and, in a real terminal (tmux),
//! the upload's progress bar, the live rollout and the coloured status tree.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::host::{config_for, Host};
use support::cli::{Cli, Terminal, BIN};
use support::{big_war, fixture, KubeCluster, Registry};

fn id_in(line: &str) -> String {
    // "... run `warship promote ID` ..."
    line.split("warship promote ").nth(1).unwrap().split('`').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_login_to_a_promoted_canary_and_a_rollback_for_people_and_for_scripts() {
    let registry = Registry::start().await;
    registry.push_base_images();
    let cluster = KubeCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (host, tokens) = Host::start(dir.path(), "host", &config_for(&registry, &cluster, ""), &["alice"]);
    let token = tokens[0].as_str();
    let cli = Cli { home: dir.path().join("home") };
    std::fs::create_dir_all(&cli.home).unwrap();

    // Before login: what to do. Bad usage: 2.
    let (code, said) = cli.fails(&["env", "list"]);
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("not logged in: run `warship login URL --token TOKEN`"), "{said}");
    assert_eq!(cli.fails(&["deploy", "shop"]).0, 2);
    let (code, said) = cli.fails(&["login", &host.base, "--token", "nope"]);
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("refused the token"), "{said}");
    let (code, said) = cli.fails(&["login", "http://127.0.0.1:1", "--token", token]);
    assert_eq!(code, 4, "{said}");
    assert!(said.contains("cannot reach the warship server at http://127.0.0.1:1") && said.contains("onnection refused"), "{said}");

    let said = cli.ok(&["login", &host.base, "--token", token]);
    assert!(said.starts_with(&format!("logged in to {}", host.base)), "{said}");
    let login = cli.home.join("config/warship/login.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&login).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&login).unwrap().contains(token));

    // Envs and WARs; JSON is the API's own.
    cli.ok(&["env", "create", "shop", "--tomcat", "10.1", "--jdk", "17", "--replicas", "2", "--jvm-opts", "-Xmx256m", "--set-env", "MODE=cli"]);
    let (code, said) = cli.fails(&["env", "create", "bad", "--tomcat", "99", "--jdk", "17"]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("(422, env.invalid)") && said.contains("- tomcat:"), "the problem and its fields: {said}");
    let envs = cli.json(&["env", "list"]);
    assert_eq!(envs[0]["name"], "shop");
    assert_eq!(envs[0]["env"]["MODE"], "cli");
    let catalog = cli.ok(&["catalog"]);
    assert!(catalog.starts_with("TOMCAT") && catalog.contains("warship/tomcat:10.1-jdk17"), "{catalog}");
    let pushed = cli.ok(&["war", "push", fixture("sample.war").to_str().unwrap()]);
    assert!(pushed.contains("uploaded sample/sample.war") && pushed.contains("sha256") && pushed.contains("servlet API") && pushed.contains("decided by   jakarta.servlet by what Tomcat loads"), "{pushed}");
    let wars = cli.json(&["war", "list"]);
    assert_eq!((wars[0]["app"].as_str(), wars[0]["file"].as_str()), (Some("sample"), Some("sample.war")));
    assert_eq!(cli.json(&["war", "show", "sample/sample.war"])["sha256"], wars[0]["sha256"]);

    // A deploy followed off a terminal: one line per event, the result, exit 0.
    let followed = cli.ok(&["deploy", "shop", "sample.war", "--version", "1.0", "--strategy", "recreate", "--follow"]);
    for line in ["] queued (revision 1, recreate strategy)", "] validating", "] building", "] pushing", "] rolling-out (sha256:", "]   step 1 scale: recreate: starting 2 new pods", "]   pushed layer", "]   replicas: candidate r1 2/2 ready", "] succeeded", "succeeded: release 1 of shop serves 1.0 (sha256:"] {
        assert!(followed.contains(line), "{line:?} missing from:\n{followed}");
    }
    assert!(!followed.contains('\u{1b}'), "no escapes off a terminal:\n{followed}");

    // A canary followed until it waits for promotion; the follower names the command.
    let steps = r#"steps=[{"weight": 50}, {"await-promotion": true}]"#;
    let mut follower = cli
        .command(&["deploy", "shop", "sample.war", "--version", "2.0", "--strategy", "canary", "--set", steps, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let waiting = loop {
        let line = lines.next().expect("the follower ended before the promotion point").unwrap();
        if line.contains("waiting for promotion") {
            break line;
        }
    };
    let id = id_in(&waiting);
    // Meanwhile another deploy is refused, with how to watch the running one.
    let (code, said) = cli.fails(&["deploy", "shop", "sample.war", "--version", "2.1"]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("deploy.in_progress") && said.contains(&format!("watch it with: warship follow {id}")), "{said}");
    let status = cli.json(&["status", "shop"]);
    assert_eq!(status["deploying"], id.as_str());
    assert_eq!(status["service"]["workloads"].as_array().unwrap().len(), 2, "stable and canary: {status}");
    // Addressed by env, as a script that knows only the env does.
    assert!(cli.ok(&["promote", "shop"]).contains(&format!("promoted deploy {id}")));
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(follower.wait().unwrap().success(), "{rest:?}");
    assert!(rest.last().unwrap().starts_with("succeeded: release 2 of shop serves 2.0"), "{rest:?}");

    // The tree for people, and the same for scripts.
    let tree = cli.ok(&["status", "shop"]);
    assert!(tree.starts_with("env shop  tomcat 10.1 · jdk 17 · 2 replicas · release 2 (2.0, sha256:"), "{tree}");
    assert!(tree.contains("└─ workload shop-r2  release 2 · 2.0 · sha256:") && tree.contains("2/2 ready serving"), "{tree}");
    assert_eq!(tree.matches("├─ pod shop-r2-").count() + tree.matches("└─ pod shop-r2-").count(), 2, "{tree}");

    // Rollback, followed: release 1's digest again, as release 3.
    let back = cli.ok(&["rollback", "shop", "--follow"]);
    assert!(back.contains("rollback to release 1") && back.contains("succeeded: release 3 of shop serves 1.0"), "{back}");
    let history = cli.json(&["deploys", "shop"]);
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(history[0]["digest"], history[2]["digest"], "the rollback runs release 1's image");
    let table = cli.ok(&["deploys", "shop"]);
    assert!(table.starts_with("ID") && table.lines().count() == 4, "{table}");

    // A deploy aborted and followed to its end: exit 1, with the reason.
    let started = cli.json(&["deploy", "shop", "sample.war", "--version", "4.0", "--strategy", "canary"]);
    let id = started["id"].as_str().unwrap();
    // By the start of its id, as a person copies it from a table.
    let (code, said) = cli.fails(&["abort", &id[..8], "--follow"]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains(&format!("deploy {id} aborted (deploy.aborted)")), "{said}");
    let (code, said) = cli.fails(&["promote", "shop"]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("deploy.none_running"), "{said}");

    // Logs reach the API server; kwok's nodes have none, and the error says so.
    let (code, said) = cli.fails(&["logs", "shop"]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("logs.unavailable"), "{said}");
    assert!(cli.ok(&["completions", "bash"]).contains("_warship()"));
    assert!(cli.ok(&["plugins"]).contains("canary"));

    // In a real terminal: the upload's bar, then the live rollout, then the coloured tree.
    let big = dir.path().join("big.war");
    big_war(&big, 300);
    let terminal = Terminal::start(&cli, "warship-cli-test", &format!("{BIN} war push {}", big.display()));
    terminal.wait_for("EXIT=0", Duration::from_secs(120));
    let written = terminal.written();
    assert!(written.contains("uploading big.war [") && written.contains("MiB/300.00 MiB"), "no progress bar:\n{written}");
    assert!(terminal.screen().contains("uploaded big/big.war"));
    drop(terminal);
    let terminal = Terminal::start(&cli, "warship-cli-deploy", &format!("{BIN} deploy shop big.war --version 5.0 --follow && {BIN} status shop"));
    let screen = terminal.wait_for("EXIT=0", Duration::from_secs(180));
    assert!(screen.contains("succeeded: release 4 of shop serves 5.0"), "{screen}");
    assert!(screen.contains("└─ workload shop-r4"), "{screen}");
    let written = terminal.written();
    assert!(written.contains("s building") || written.contains("s pushing"), "the spinner showed the status:\n{written}");
    assert!(written.contains("\u{1b}[32m2/2 ready"), "the tree is coloured on a terminal:\n{written}");
    drop(terminal);

    // Ctrl-C while following a canary stops following, not the canary, and says how to go on.
    let terminal = Terminal::start(
        &cli,
        "warship-cli-interrupt",
        &format!("{BIN} deploy shop sample.war --version 6.0 --strategy canary --set '{steps}' --follow"),
    );
    let screen = terminal.wait_for("waiting for promotion", Duration::from_secs(120));
    let id = id_in(screen.lines().find(|l| l.contains("waiting for promotion")).unwrap());
    terminal.keys("C-c");
    let screen = terminal.wait_for("EXIT=130", Duration::from_secs(30));
    assert!(screen.contains(&format!("stopped following; deploy {id} goes on. Watch it again with: warship follow {id}")), "{screen}");
    let record = cli.json(&["deploys", "shop"])[0].clone();
    assert_eq!((record["id"].as_str(), record["status"].as_str()), (Some(id.as_str()), Some("rolling-out")));
    let promoted = cli.ok(&["promote", &id, "--follow"]);
    assert!(promoted.contains("succeeded: release 5 of shop serves 6.0"), "{promoted}");

    // Changing an env keeps what is not named; deleting it takes what it ran.
    let updated = cli.json(&["env", "update", "shop", "--replicas", "3", "--set-env", "EXTRA=1", "--unset-env", "MODE"]);
    assert_eq!((updated["replicas"].as_u64(), updated["jvm_options"].as_str()), (Some(3), Some("-Xmx256m")));
    assert_eq!(updated["env"], serde_json::json!({"EXTRA": "1"}));
    let (code, said) = cli.fails(&["env", "update", "shop"]);
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("nothing to change"), "{said}");
    cli.ok(&["war", "delete", "big/big.war"]);
    assert_eq!(cli.json(&["war", "list"]).as_array().unwrap().len(), 1);
    assert!(cli.ok(&["env", "delete", "shop"]).contains("deleted env shop"));
    assert_eq!(cli.json(&["env", "list"]), serde_json::json!([]));
}

/// `warship follow` through one address while the host behind it is killed and another
/// takes its place (a load balancer's view of a restart): it reconnects, resumes after
/// the last event it saw, and its exit code comes from the deploy's final record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_survives_the_host_behind_its_address_being_killed_and_replaced() {
    let mut shop = support::host::Shop::serving(2, "recreate").await;
    let proxy = support::proxy::Proxy::start(shop.host.base.trim_start_matches("http://")).await;
    let url = format!("http://{}", proxy.addr);
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli { home: dir.path().join("home") };
    cli.ok(&["login", &url, "--token", &shop.alice]);
    let steps = serde_json::json!([{"weight": 50}, {"await-promotion": true}]);
    let body = serde_json::json!({"war": "sample.war", "version": "2.0", "strategy": "canary", "settings": {"steps": steps}});
    let id = support::host::deploy(&shop.host, &shop.alice, body).await;

    let mut follower = cli.command(&["follow", &id]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str, within: Duration| {
        let started = Instant::now();
        while !seen.iter().any(|l: &String| l.contains(needle)) {
            let left = within.checked_sub(started.elapsed()).unwrap_or_else(|| panic!("no {needle:?} in:\n{}", seen.join("\n")));
            if let Ok(line) = lines.recv_timeout(left.min(Duration::from_millis(500))) {
                seen.push(line);
            }
        }
    };
    wait_for("waiting for promotion", Duration::from_secs(120));

    // The host dies; another serves behind the same address and takes the canary over.
    shop.kill_and_restart();
    proxy.retarget(shop.host.base.trim_start_matches("http://"));
    wait_for("reconnecting", Duration::from_secs(30));
    shop.host.wait_step(&shop.alice, &id, "await-promotion").await;
    let resumed_at = Instant::now();
    loop {
        let (status, answer) = shop.host.post(&format!("/api/v1/deploys/{id}/promote"), &shop.alice, serde_json::json!({})).await;
        if status == 202 {
            break;
        }
        // Until the new host has resumed it, the promotion may still be early.
        assert!(resumed_at.elapsed() < Duration::from_secs(60), "{status} {answer}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = follower.wait().unwrap();
    let mut rest = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        rest.push_str(&line);
        rest.push('\n');
    }
    let all = format!("{}\n{rest}", seen.join("\n"));
    assert_eq!(status.code(), Some(0), "{all}");
    assert!(all.contains("succeeded: release 2 of shop serves 2.0"), "{all}");
    // Resumed after the last event seen: no step is told twice.
    let waits = all.lines().filter(|l| l.contains("waiting for promotion: run")).count();
    assert_eq!(waits, 1, "{all}");
}
