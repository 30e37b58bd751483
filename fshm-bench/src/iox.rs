//! iceoryx2 side by side with fshm (feature `iceoryx2`): publish-subscribe streaming of
//! `[u8]` messages and 8-byte ping-pong, set up to match fshm's jobs in `jobs.rs`.
//!
//! Streaming: the service never overflows (`enable_safe_overflow(false)`) and the
//! publisher retries until a sample is delivered (`RetryUntilDelivered`), so no message
//! is lost; the subscriber's buffer holds as many messages as fit in fshm's ring
//! capacity, so both sides have about the same bytes in flight. Each message is written
//! into a loaned sample (`loan_slice_uninit` + `write_from_slice`: one copy, as a
//! producer with its data elsewhere would make); the subscriber busy-polls `receive` and
//! reads every byte of each sample in place ([`byte_sum`], checked against the data).
//!
//! Ping-pong: two publish-subscribe services of `u64` (one each way), the receiving
//! side either busy-polling `receive` or sleeping in an event service's listener, woken
//! by the sender's notifier after each send.
//!
//! Every file iceoryx2 makes is named after the job (`fshm-bench-<pid>-` in /dev/shm,
//! the scratch directory `/tmp/fshm-bench-<pid>/` for its service and node files), so the
//! orchestrator's sweep removes whatever a crashed job leaves.

use crate::jobs::{check_sum, mbps, RING_CAPACITY};
use crate::util::*;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;
use std::fmt::Debug;
use std::io;
use std::time::Instant;

/// An `io::Error` naming the iceoryx2 step that failed.
fn iox<E: Debug>(what: &'static str) -> impl FnOnce(E) -> io::Error {
    move |e| other(format!("iceoryx2 {what}: {e:?}"))
}

/// The job's iceoryx2 configuration: its files named after the job (see the module
/// documentation), everything else iceoryx2's defaults.
fn config() -> io::Result<Config> {
    let mut c = Config::default();
    let pid = job_pid();
    c.global.prefix =
        FileName::new(format!("{PREFIX}{pid}-").as_bytes()).map_err(iox("file prefix"))?;
    let root = format!("{}/", scratch_dir_of(pid));
    c.global
        .set_root_path(&Path::new(root.as_bytes()).map_err(iox("root path"))?);
    Ok(c)
}

/// Removes what iceoryx2 keeps after its last node is gone (its global management
/// object in /dev/shm, the scratch directory): the job made them, the job removes them.
/// Call after every port and node of both processes is dropped.
fn remove_leftovers() {
    sweep(job_pid());
}

/// A node of this process. Signal handling stays off: the orchestrator ends jobs with
/// SIGKILL, and iceoryx2 must not take over SIGINT/SIGTERM in a job.
fn node() -> io::Result<Node<ipc::Service>> {
    NodeBuilder::new()
        .config(&config()?)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(iox("node"))
}

fn service_name(tag: &str) -> io::Result<ServiceName> {
    ServiceName::new(&format!("fshm-bench/{}/{tag}", job_pid())).map_err(iox("service name"))
}

/// How long a streaming subscriber waits without data before it reports a stall.
const STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// Subscriber buffer (in messages) that holds about the bytes of fshm's ring.
fn buffer_for(chunk: usize) -> usize {
    (RING_CAPACITY as usize / chunk).max(2)
}

/// Streams `bytes` in `chunk`-byte messages from this process (publisher) to a forked
/// subscriber, pinned to separate CPUs. MB/s = bytes / (subscriber done − publisher
/// start), as in fshm's streaming jobs.
pub fn stream_job(chunk: usize, bytes: u64) -> io::Result<Vec<f64>> {
    if chunk == 0 || bytes % chunk as u64 != 0 {
        return Err(other(format!(
            "iox2-stream: the volume ({bytes}) must be a multiple of the message size ({chunk})"
        )));
    }
    let pat = Pattern::new(chunk);
    let buffer = buffer_for(chunk);
    let (mut ctl, peer) = Ctl::pair()?;
    // The service's settings, the same on both sides (the opening side checks them).
    let open = |node: &Node<ipc::Service>| {
        let name = service_name("stream")?;
        node.service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(buffer)
            .subscriber_max_borrowed_samples(1)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .map_err(iox("publish-subscribe service"))
    };
    let child = {
        let pat = &pat;
        fork_child(&ctl.fds(), move || {
            pin(Side::Consumer)?;
            let mut ctl = peer;
            ctl.recv::<1>()?; // the service exists
            let node = node()?;
            let service = open(&node)?;
            let sub = service
                .subscriber_builder()
                .buffer_size(buffer)
                .create()
                .map_err(iox("subscriber"))?;
            ctl.send(&[1])?;
            // A publisher whose subscriber has not connected its end drops what does not
            // fit the buffer rather than wait: connect before the publisher starts.
            ctl.recv::<1>()?; // the publisher exists
            sub.update_connections()
                .map_err(iox("connecting the subscriber"))?;
            ctl.send(&[1])?;
            let mut v = Verifier::new(pat);
            let mut sum = 0u64;
            let mut idle = 0u32;
            let mut since = Instant::now();
            while v.pos < bytes {
                match sub.receive().map_err(iox("receive"))? {
                    Some(sample) => {
                        let data: &[u8] = sample.payload();
                        sum = sum.wrapping_add(byte_sum(data));
                        v.piece(data);
                        idle = 0;
                    }
                    None => {
                        // A lost sample would leave this loop waiting forever: give up
                        // after a long time without data, saying how far it got.
                        idle += 1;
                        if idle == 1 {
                            since = Instant::now();
                        } else if idle % 4096 == 0 && since.elapsed() > STALL {
                            return Err(other(format!(
                                "iceoryx2 subscriber: nothing for {STALL:?} after {} of \
                                 {bytes} bytes",
                                v.pos
                            )));
                        }
                        std::hint::spin_loop();
                    }
                }
            }
            let end = now_ns();
            ctl.send(&[end, v.pos, v.bad, sum])
        })?
    };
    let result = (|| -> io::Result<Vec<f64>> {
        pin(Side::Producer)?;
        let node = node()?;
        let service = open(&node)?;
        ctl.send(&[1])?;
        ctl.recv::<1>()?; // the subscriber exists
        let publisher = service
            .publisher_builder()
            .initial_max_slice_len(chunk)
            .allocation_strategy(AllocationStrategy::Static)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .max_loaned_samples(1)
            .create()
            .map_err(iox("publisher"))?;
        publisher
            .update_connections()
            .map_err(iox("connecting the publisher"))?;
        ctl.send(&[1])?;
        ctl.recv::<1>()?; // the subscriber is connected
        let start = now_ns();
        let mut pos = 0u64;
        while pos < bytes {
            let sample = publisher.loan_slice_uninit(chunk).map_err(iox("loan"))?;
            let delivered = sample
                .write_from_slice(pat.at(pos, chunk))
                .send()
                .map_err(iox("send"))?;
            if delivered != 1 {
                return Err(other(format!(
                    "iceoryx2 publisher: the message at byte {pos} reached {delivered} \
                     subscribers, not 1"
                )));
            }
            pos += chunk as u64;
        }
        let [end, got, bad, sum] = ctl.recv::<4>()?;
        Verifier {
            pat: &pat,
            pos: got,
            bad,
        }
        .check(bytes)?;
        check_sum(&pat, bytes, sum)?;
        Ok(vec![mbps(bytes, end.saturating_sub(start))])
    })();
    let waited = child.wait();
    remove_leftovers();
    let r = result?;
    waited?;
    Ok(r)
}

/// One direction of a ping-pong: a publisher of `u64` and its wake-up notifier, or a
/// subscriber and its listener.
struct Ends {
    publisher: iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>,
    notifier: Option<iceoryx2::port::notifier::Notifier<ipc::Service>>,
    subscriber: iceoryx2::port::subscriber::Subscriber<ipc::Service, u64, ()>,
    listener: Option<iceoryx2::port::listener::Listener<ipc::Service>>,
}

impl Ends {
    /// Publishes to `out` and subscribes to `inp` (services of the same node); with
    /// `event`, also notifies on `out`'s event service and listens on `inp`'s.
    fn new(node: &Node<ipc::Service>, out: &str, inp: &str, event: bool) -> io::Result<Ends> {
        let pubsub = |tag: &str| {
            node.service_builder(&service_name(tag)?)
                .publish_subscribe::<u64>()
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(2)
                .history_size(0)
                .max_publishers(1)
                .max_subscribers(1)
                .open_or_create()
                .map_err(iox("publish-subscribe service"))
        };
        let events = |tag: &str| {
            node.service_builder(&service_name(&format!("{tag}-event"))?)
                .event()
                .open_or_create()
                .map_err(iox("event service"))
        };
        let publisher = pubsub(out)?
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(iox("publisher"))?;
        let subscriber = pubsub(inp)?
            .subscriber_builder()
            .create()
            .map_err(iox("subscriber"))?;
        let (notifier, listener) = if event {
            let n = events(out)?
                .notifier_builder()
                .create()
                .map_err(iox("notifier"))?;
            let l = events(inp)?
                .listener_builder()
                .create()
                .map_err(iox("listener"))?;
            (Some(n), Some(l))
        } else {
            (None, None)
        };
        Ok(Ends {
            publisher,
            notifier,
            subscriber,
            listener,
        })
    }

    /// Connects the publisher to a subscriber made after it, and the subscriber to a
    /// publisher made after it (both sides' ports must exist).
    fn connect(&self) -> io::Result<()> {
        self.publisher
            .update_connections()
            .map_err(iox("connecting the publisher"))?;
        self.subscriber
            .update_connections()
            .map_err(iox("connecting the subscriber"))
    }

    fn send(&self, v: u64) -> io::Result<()> {
        if self.publisher.send_copy(v).map_err(iox("send"))? != 1 {
            return Err(other(format!(
                "iceoryx2 publisher: message {v} reached no subscriber"
            )));
        }
        if let Some(n) = &self.notifier {
            n.notify().map_err(iox("notify"))?;
        }
        Ok(())
    }

    /// The next message: busy-polls without a listener; with one, sleeps in it whenever
    /// nothing has arrived (a notification for a message already taken only costs a turn
    /// of the loop).
    fn recv(&self) -> io::Result<u64> {
        loop {
            if let Some(s) = self.subscriber.receive().map_err(iox("receive"))? {
                return Ok(*s.payload());
            }
            match &self.listener {
                Some(l) => {
                    l.blocking_wait(|_| {}).map_err(iox("listener wait"))?;
                }
                None => std::hint::spin_loop(),
            }
        }
    }
}

/// 8-byte messages (the trip number) bounced `trips` times between this process and a
/// forked one, pinned to separate CPUs. Returns [median µs, p99 µs] per round trip.
pub fn pingpong_job(event: bool, trips: u64) -> io::Result<Vec<f64>> {
    let (mut ctl, peer) = Ctl::pair()?;
    let child = fork_child(&ctl.fds(), move || {
        pin(Side::Consumer)?;
        let mut ctl = peer;
        ctl.recv::<1>()?; // the other side's ports exist
        let node = node()?;
        let ends = Ends::new(&node, "ba", "ab", event)?;
        ctl.send(&[1])?;
        ctl.recv::<1>()?; // the other side is connected
        ends.connect()?;
        for i in 0..trips {
            if ends.recv()? != i {
                return Err(other("ping-pong: wrong message"));
            }
            ends.send(i)?;
        }
        ctl.recv::<1>()?; // the other side has its last reply
        Ok(())
    })?;
    let result = (|| -> io::Result<Vec<f64>> {
        pin(Side::Producer)?;
        let node = node()?;
        let ends = Ends::new(&node, "ab", "ba", event)?;
        ctl.send(&[1])?;
        ctl.recv::<1>()?; // the child's ports exist
        ends.connect()?;
        ctl.send(&[1])?;
        let mut times = Vec::with_capacity(trips as usize);
        for i in 0..trips {
            let t = Instant::now();
            ends.send(i)?;
            let r = ends.recv()?;
            times.push(t.elapsed().as_nanos() as f64 / 1e3);
            if r != i {
                return Err(other("ping-pong: wrong reply"));
            }
        }
        ctl.send(&[1])?;
        Ok(vec![median(&times), quantile(&times, 0.99)])
    })();
    let waited = child.wait();
    remove_leftovers();
    let r = result?;
    waited?;
    Ok(r)
}
