//! A real etcd cluster on loopback ports for tests and benchmarks: `n` members of Debian's
//! `etcd` (3.4), each in its own data directory, started and killed by the harness.
//!
//! Owns: starting members, waiting for a leader, killing and restarting members, the cluster's
//! client endpoints. Must never: touch anything but 127.0.0.1 and its own temporary directory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster; members are killed when it is dropped.
pub struct EtcdCluster {
    dir: tempfile_dir::Dir,
    members: Vec<Member>,
    initial_cluster: String,
    /// Extra command-line options given to every member.
    extra_args: Vec<String>,
}

/// A temporary directory without a dev-dependency in the library (removed on drop).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            let mut raw = [0u8; 8];
            ekm_core::crypto::fill_random(&mut raw);
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let p = std::env::temp_dir().join(format!("ekm-etcd-{hex}"));
            std::fs::create_dir_all(&p)?;
            Ok(Dir(p))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The etcd binary: `EKM_ETCD_BIN`, else `etcd` on the PATH (Debian's `etcd-server`).
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("EKM_ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers.
    pub fn start(n: usize) -> std::io::Result<EtcdCluster> {
        EtcdCluster::start_with_args(n, &[])
    }

    /// Starts `n` members, each given `extra_args` besides the harness's own options (e.g.
    /// `--quota-backend-bytes`, `--auto-compaction-retention`), and waits until every one
    /// answers.
    pub fn start_with_args(n: usize, extra_args: &[&str]) -> std::io::Result<EtcdCluster> {
        // A port picked free may be taken by another test before its member binds it (the
        // member then exits): such a start is abandoned and tried again on other ports.
        let mut last = None;
        for _ in 0..3 {
            let mut cluster = EtcdCluster::new(n, extra_args)?;
            for i in 0..n {
                cluster.spawn(i, "new")?;
            }
            // Waited for in short turns, so that a member that exited is noticed at once; one
            // that exited while another etcd answered on its port is caught as well.
            let deadline = Instant::now() + Duration::from_secs(45);
            let healthy = loop {
                match cluster.wait_healthy(Duration::from_secs(1)) {
                    Ok(()) if cluster.exited_members().is_empty() => break Ok(()),
                    Ok(()) => break Err(std::io::Error::other("a member exited")),
                    Err(e) if Instant::now() > deadline => break Err(e),
                    Err(e) if !cluster.exited_members().is_empty() => break Err(e),
                    Err(_) => {}
                }
            };
            match healthy {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    let exited = cluster.exited_members();
                    if exited.is_empty() {
                        return Err(e);
                    }
                    last = Some(std::io::Error::other(format!(
                        "{e}; members that exited: {}",
                        exited.join(", ")
                    )));
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("etcd cluster did not start")))
    }

    /// `n` members on ports free now, none started.
    fn new(n: usize, extra_args: &[&str]) -> std::io::Result<EtcdCluster> {
        let dir = tempfile_dir::Dir::new()?;
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        Ok(EtcdCluster {
            dir,
            members,
            initial_cluster,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        })
    }

    /// The names of started members whose process has exited, with the end of their log.
    fn exited_members(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.members.len() {
            let exited = match self.members[i].child.as_mut() {
                Some(c) => matches!(c.try_wait(), Ok(Some(_))),
                None => false,
            };
            if exited {
                let name = self.members[i].name.clone();
                let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: String = log.lines().rev().take(2).collect::<Vec<_>>().join(" / ");
                out.push(format!("{name} ({tail})"));
            }
        }
        out
    }

    fn spawn(&mut self, i: usize, state: &str) -> std::io::Result<()> {
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name)))?;
        let child = Command::new(etcd_binary())
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{}", m.client_port))
            .arg("--advertise-client-urls")
            .arg(format!("http://127.0.0.1:{}", m.client_port))
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer_port))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer_port))
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg("ekm-test")
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Client URLs of every member, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Waits until every running member accepts connections on its client port.
    pub fn wait_healthy(&self, within: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + within;
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            loop {
                let ok = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .arg("--endpoints")
                    .arg(format!("http://127.0.0.1:{}", m.client_port))
                    .arg("--command-timeout=1s")
                    .arg("endpoint")
                    .arg("health")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(std::io::Error::other(format!(
                        "etcd member {} not healthy within {within:?}",
                        m.name
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes member `i` (SIGSTOP): its connections stay open but nothing answers, as a
    /// member on a hung machine.
    pub fn pause(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// Thaws member `i` (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&self, i: usize, sig: &str) {
        if let Some(c) = &self.members[i].child {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Restarts a killed member `i` over its data directory.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.spawn(i, "existing")
    }

    /// The index of the current leader, asking `etcdctl endpoint status`.
    pub fn leader(&self) -> Option<usize> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoints().join(","))
            .arg("--command-timeout=2s")
            .arg("endpoint")
            .arg("status")
            .arg("-w")
            .arg("fields")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // Lines: "Endpoint" : "http://...", ... "Leader" : N, "MemberID" : M per endpoint.
        let mut endpoint = None;
        let mut member = None;
        let mut leader = None;
        for line in text.lines() {
            let (k, v) = match line.split_once(':') {
                Some((k, v)) => (k.trim().trim_matches('"'), v.trim().trim_matches('"')),
                None => continue,
            };
            match k {
                "Endpoint" => endpoint = Some(v.to_owned()),
                "MemberID" => member = Some(v.to_owned()),
                "Leader" => leader = Some(v.to_owned()),
                _ => {}
            }
            if let (Some(e), Some(m), Some(l)) = (&endpoint, &member, &leader) {
                if m == l {
                    return self.endpoints().iter().position(|x| x == e);
                }
                endpoint = None;
                member = None;
                leader = None;
            }
        }
        None
    }

    /// Every key under `prefix` as `etcdctl get --prefix` prints it (keys and values).
    pub fn dump(&self, prefix: &str) -> Vec<u8> {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoints().join(","))
            .arg("get")
            .arg("--prefix")
            .arg(prefix)
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
