import ClusterTestKit
import Membership
import MembershipTransport
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

// Membership benchmark in the simulator's accounting: per node, messages and bytes (the wire
// encoding's size) per second in steady state, messages per probe round, the state machines' CPU
// per node, and simulated seconds per wall-second. `swift run -c release membership-bench`.

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
}

func wallSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

print(
    "| N | loss | messages/s per node | bytes/s per node | messages per probe round per node | CPU µs per node per simulated s | simulated s per wall s |"
)
print("|---|---|---|---|---|---|---|")
for (count, loss, seconds) in [(100, 0.0, 120), (100, 0.05, 120), (1000, 0.0, 30), (1000, 0.05, 30)] {
    var options = SimulatedCluster.Options()
    options.loss = loss
    let cluster = SimulatedCluster(count: count, seed: 7, options: options)
    cluster.startConverged()
    cluster.run(for: .seconds(5))
    var messages = 0
    var bytes = 0
    var scratch = ByteBuffer()
    cluster.onSend = { envelope in
        messages += 1
        scratch.clear()
        EnvelopeCodec.encode(envelope, into: &scratch)
        bytes += scratch.readableBytes
    }
    let cpuStart = cpuSeconds()
    let wallStart = wallSeconds()
    cluster.run(for: .seconds(Int64(seconds)))
    let cpu = cpuSeconds() - cpuStart
    let wall = wallSeconds() - wallStart
    let nodeSeconds = Double(count * seconds)
    let probeInterval = cluster.options.configuration.probeInterval
    let roundsPerSecond =
        1 / (Double(probeInterval.components.attoseconds) / 1e18 + Double(probeInterval.components.seconds))
    print(
        "| \(count) | \(Int(loss * 100))% | \(fmt(Double(messages) / nodeSeconds)) | \(Int(Double(bytes) / nodeSeconds)) | "
            + "\(fmt(Double(messages) / nodeSeconds / roundsPerSecond)) | \(fmt(cpu / nodeSeconds * 1e6)) | \(fmt(Double(seconds) / wall)) |"
    )
}

func fmt(_ x: Double) -> String { "\((x * 10).rounded() / 10)" }
