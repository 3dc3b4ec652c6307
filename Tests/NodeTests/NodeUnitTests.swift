import Directory
import Foundation
import NIOCore
import ServerSupport
import Testing

@testable import Node

@Suite("Durations")
struct GoDurationTests {
    @Test(arguments: [
        ("5s", 5.0), ("1h30m", 5400.0), ("168h", 604_800.0), ("30d", 2_592_000.0), ("1.5h", 5400.0),
        ("300ms", 0.3), ("0", 0.0), ("2h45m30s", 9930.0), ("1d12h", 129_600.0),
    ])
    func parses(_ text: String, _ seconds: Double) {
        #expect(GoDuration.parse(text) == seconds)
    }

    @Test(arguments: ["", "5", "s", "5x", "-5s", "1h-30m", "1..5s", "abc", "5 s", "1e3s"])
    func rejects(_ text: String) {
        #expect(GoDuration.parse(text) == nil)
    }

    @Test(arguments: ["99999999999999999h", "2562048h", "\(String(repeating: "9", count: 400))s", "106752d"])
    func refusesBeyondGosMaximum(_ text: String) {
        #expect(GoDuration.parse(text) == nil)
    }

    @Test func rangeErrorsNameTheFieldAndTheLimits() {
        guard case .failure(let problem) = GoDuration.parse("2h", field: "ttl", range: 1...3600) else {
            Issue.record("2h is outside 1s...1h")
            return
        }
        #expect(problem.message.contains("ttl=2h"))
        #expect(problem.message.contains("between 1s and 1h0m0s"))
        #expect((try? GoDuration.parse("30m", field: "ttl", range: 1...3600).get()) == 1800)
    }

    @Test func formattingNeverTraps() {
        #expect(GoDuration.format(.infinity) == GoDuration.format(GoDuration.maximumSeconds))
        #expect(GoDuration.format(1e300) == "2562047h47m16s")
        #expect(GoDuration.format(-5) == "0s")
    }

    @Test func expiryOfAHugeStoredTTLSaturates() {
        var record = NamespaceRecord(name: "a", origin: .auto, createdAt: 1_700_000_000_000)
        record.ttlSeconds = 1e30
        #expect(record.expiresAt == 1_700_000_000_000 + Int64(GoDuration.maximumSeconds * 1000))
        record.ttlSeconds = .nan
        #expect(record.expiresAt == 1_700_000_000_000)
    }

    @Test func formatsLikeGo() {
        #expect(GoDuration.format(604_800) == "168h0m0s")
        #expect(GoDuration.format(90) == "1m30s")
        #expect(GoDuration.format(0.5) == "500ms")
    }
}

@Suite("Namespace names")
struct NamespaceNameTests {
    @Test(arguments: ["a", "api-keys", "runtime_db", "0", String(repeating: "a", count: 63), "a-b_c9"])
    func valid(_ name: String) {
        #expect(NamespaceName.isValid(name))
    }

    @Test(arguments: [
        "", "_state", "-a", "A", "a.b", "..", "%2e%2e", "a/b", "a\u{0}b", String(repeating: "a", count: 64), "é",
        "a b", ".", "a%00",
    ])
    func invalid(_ name: String) {
        #expect(!NamespaceName.isValid(name))
    }

    @Test func reservedNamesSayWhy() {
        #expect(NamespaceName.problem("_state").contains("reserved"))
    }
}

@Suite("GC planner")
struct GarbageCollectionPlannerTests {
    let planner = GarbageCollectionPlanner(autoIdle: .seconds(3600), archiveRetention: .seconds(86400))
    let hour: Int64 = 3_600_000

    func record(_ name: String, _ origin: NamespaceOrigin, lastAccess: Int64, created: Int64 = 0) -> NamespaceRecord {
        var r = NamespaceRecord(name: name, origin: origin, createdAt: created)
        r.lastAccessAt = lastAccess
        return r
    }

    @Test func archivesIdleAutoNamespacesOnly() {
        let now = 10 * self.hour
        let records = [
            self.record("idle-auto", .auto, lastAccess: now - 2 * self.hour),
            self.record("busy-auto", .auto, lastAccess: now - self.hour / 2),
            self.record("idle-explicit", .explicit, lastAccess: now - 5 * self.hour),
        ]
        var unlockedExplicit = records[2]
        unlockedExplicit.locked = false
        let decisions = self.planner.plan(records: records + [unlockedExplicit], archives: [], now: now)
        #expect(decisions == [.archive(name: "idle-auto", reason: "auto-created idle > 1h0m0s")])
    }

    @Test func archivesExpiredTTLOfAnyOriginUnlessLocked() {
        let now = 10 * self.hour
        var expired = self.record("expired", .explicit, lastAccess: now)
        expired.locked = false
        expired.ttlSeconds = 3600
        var lockedExpired = self.record("locked", .auto, lastAccess: now)
        lockedExpired.locked = true
        lockedExpired.ttlSeconds = 60
        var fresh = self.record("fresh", .auto, lastAccess: now, created: now - 1000)
        fresh.ttlSeconds = 3600
        let decisions = self.planner.plan(records: [expired, lockedExpired, fresh], archives: [], now: now)
        #expect(decisions == [.archive(name: "expired", reason: "ttl 1h0m0s expired")])
    }

    @Test func purgesOldArchives() {
        let now = 100 * self.hour
        let decisions = self.planner.plan(
            records: [],
            archives: [("old.20260101T000000Z", now - 25 * self.hour), ("new.20260101T000000Z", now - self.hour)],
            now: now
        )
        #expect(decisions == [.purge(archive: "old.20260101T000000Z")])
    }

    @Test func archiveTimestampsRoundTrip() {
        let stamp = ArchiveStore.timestamp(1_700_000_000_000)
        #expect(stamp == "20231114T221320Z")
        #expect(ArchiveStore.parseTimestamp(stamp) == 1_700_000_000_000)
    }
}

@Suite("Configuration")
struct NodeConfigurationTests {
    @Test func defaultsMatchTheAncestor() throws {
        let c = try NodeConfiguration(environment: [:])
        #expect(c.dataAddress == .init(host: "0.0.0.0", port: 8080))
        #expect(c.adminAddress == .init(host: "0.0.0.0", port: 8081))
        #expect(c.dataDirectory == "/var/lib/turso")
        #expect(c.backendPorts == 9000...9999)
        #expect(c.maxNamespaces == 256)
        #expect(c.maxRunning == 256)
        #expect(c.allowAutoProvision)
        #expect(c.startupTimeout == .seconds(5))
        #expect(c.gcInterval == .seconds(3600))
        #expect(c.autoIdleDuration == .seconds(168 * 3600))
        #expect(c.archiveRetention == .seconds(720 * 3600))
        #expect(c.syncWALLimit == 64 << 20)
        #expect(c.syncHistoryRetention == .seconds(7 * 86_400))
    }

    @Test func readsSizesWithUnits() throws {
        #expect(try NodeConfiguration(environment: ["TURSO_SYNC_WAL_LIMIT": "512KiB"]).syncWALLimit == 512 << 10)
        #expect(try NodeConfiguration(environment: ["TURSO_SYNC_WAL_LIMIT": "2GiB"]).syncWALLimit == 2 << 30)
        #expect(try NodeConfiguration(environment: ["TURSO_SYNC_WAL_LIMIT": "1048576"]).syncWALLimit == 1 << 20)
        #expect(
            try NodeConfiguration(environment: ["TURSO_SYNC_HISTORY_RETENTION": "30d"]).syncHistoryRetention
                == .seconds(30 * 86_400)
        )
        for text in ["", "MiB", "-1MiB", "1.5MiB", "1 MiB", "64XB", "99999999999999999999GiB"] where !text.isEmpty {
            #expect(NodeConfiguration.parseByteSize(text) == nil, "\(text)")
        }
    }

    @Test func readsTheEnvironment() throws {
        let c = try NodeConfiguration(environment: [
            "TURSO_DATA_ADDR": "127.0.0.2:7000", "TURSO_GC_INTERVAL": "1m", "TURSO_ALLOW_AUTO_PROVISION": "false",
            "TURSO_MAX_RUNNING": "16", "TURSO_DATA_DIR": "/tmp/x/",
        ])
        #expect(c.dataAddress == .init(host: "127.0.0.2", port: 7000))
        #expect(c.gcInterval == .seconds(60))
        #expect(!c.allowAutoProvision)
        #expect(c.maxRunning == 16)
        #expect(c.dataDirectory == "/tmp/x")
        #expect(c.databasePath("a") == "/tmp/x/a.db")
    }

    @Test(arguments: [
        ["TURSO_GC_INTERVAL": "soon"], ["TURSO_MAX_RUNNING": "0"],
        ["TURSO_BACKEND_PORT_START": "9999", "TURSO_BACKEND_PORT_END": "9000"],
        ["TURSO_DATA_ADDR": "8080"], ["TURSO_ALLOW_AUTO_PROVISION": "maybe"], ["TURSO_DATA_ADDR": ":9500"],
        ["TURSO_ADMIN_ADDR": ":8080"], ["TURSO_LOG_LEVEL": "loud"], ["TURSO_MAX_NAMESPACES": "-1"],
        ["TURSO_NODE_ID": "bad id/with spaces"], ["TURSO_JOIN": "10.0.0.1:7946"],
        ["TURSO_STARTUP_TIMEOUT": "99999999999999999h"], ["TURSO_UPSTREAM_TIMEOUT": "0s"],
        ["TURSO_MAX_BODY_BYTES": "99999999999999999999"], ["TURSO_MAX_BODY_BYTES": "\(2 << 30)"],
        ["TURSO_LEAVE_TIMEOUT": "1000d"], ["TURSO_REPLICAS": "0"], ["TURSO_SYNC_WAL_LIMIT": "1KiB"],
        ["TURSO_SYNC_WAL_LIMIT": "lots"], ["TURSO_SYNC_WAL_LIMIT": "65GiB"], ["TURSO_SYNC_HISTORY_RETENTION": "0s"],
        ["TURSO_VOTERS": "2"], ["TURSO_VOTERS": "7"], ["TURSO_BOOTSTRAP_EXPECT": "0"], ["TURSO_ROLE": "boss"],
        ["TURSO_ROLE": "witness"], ["TURSO_MIN_INSYNC": "2"], ["TURSO_REPLICAS": "3", "TURSO_MIN_INSYNC": "0"],
    ])
    func rejectsInvalidValues(_ environment: [String: String]) {
        #expect(throws: NodeError.self) { try NodeConfiguration(environment: environment) }
    }

    @Test func clusterLogDefaultsFollowTheJoinSetting() throws {
        #expect(try NodeConfiguration(environment: [:]).bootstrapExpect == 1)
        let joined = try NodeConfiguration(environment: [
            "TURSO_JOIN": "10.0.0.1:7946", "TURSO_INSECURE_CLUSTER": "true", "TURSO_ROLE": "Witness",
        ])
        #expect(joined.bootstrapExpect == 3 && joined.voters == 3 && joined.isWitness)
    }

    @Test func everyRangeErrorNamesTheVariableAndItsLimits() {
        do {
            _ = try NodeConfiguration(environment: ["TURSO_IDLE_TIMEOUT": "2562047h"])
            Issue.record("a 292-year idle timeout was accepted")
        } catch {
            #expect(
                error.message
                    == "TURSO_IDLE_TIMEOUT=2562047h is not a duration between 1ms and 24h0m0s (examples: 5s, 1h30m, 168h, 30d)"
            )
        }
        do {
            _ = try NodeConfiguration(environment: ["TURSO_MAX_RUNNING": "-3"])
            Issue.record("a negative backend count was accepted")
        } catch {
            #expect(error.message == "TURSO_MAX_RUNNING=-3 is not an integer between 1 and 1000000")
        }
    }

    /// Every duration's upper bound converts to milliseconds, and to nanoseconds for NIO, without overflow.
    @Test func everyDurationRangeFitsTheTimers() {
        for (key, range) in NodeConfiguration.durationRanges {
            #expect(range.upperBound * 1e9 < Double(Int64.max), "\(key)")
        }
    }
}

@Suite("host:port")
struct HostPortTests {
    @Test(arguments: [
        (":8080", "", 8080), ("127.0.0.1:80", "127.0.0.1", 80), ("[::1]:7946", "::1", 7946),
        ("node-1.svc:0", "node-1.svc", 0), ("h:65535", "h", 65535),
    ])
    func parses(_ text: String, _ host: String, _ port: Int) throws {
        let parsed = try #require(HostPort(text))
        #expect(parsed.host == host)
        #expect(parsed.port == port)
        #expect(HostPort(parsed.description) == parsed)
    }

    @Test(arguments: ["8080", "h:", "h:65536", "h:-1", "::1:80", "h:8080x", "", ":"])
    func rejects(_ text: String) {
        #expect(HostPort(text) == nil)
    }

    @Test func timeAmountsSaturateInsteadOfTrapping() {
        #expect(Duration.seconds(1.5).timeAmount == .milliseconds(1500))
        #expect(Duration.seconds(Int64.max).timeAmount == .nanoseconds(.max))
        #expect(Duration.milliseconds(2500).milliseconds == 2500)
    }
}

@Suite("Admin JSON")
struct AdminJSONTests {
    @Test func theHandWrittenListEncoderMatchesJSONEncoder() throws {
        var running = NamespaceInfo(
            name: "app-1",
            origin: "explicit",
            locked: true,
            ttl: "2h0m0s",
            createdAt: HTTPHelpers.iso8601(1_764_666_768_463),
            lastAccessAt: HTTPHelpers.iso8601(-1),
            expiresAt: nil,
            owner: nil,
            holder: "node \"a\"\\/\u{1}\n",
            replicas: ["b", "c/d"],
            state: "running",
            running: true
        )
        running.port = 9000
        running.pid = 4242
        let dormant = NamespaceInfo(
            name: "z",
            origin: "auto",
            locked: false,
            ttl: nil,
            createdAt: HTTPHelpers.iso8601(0),
            lastAccessAt: HTTPHelpers.iso8601(999),
            expiresAt: HTTPHelpers.iso8601(253_402_300_799_999),
            owner: "n1",
            holder: "n1",
            replicas: [],
            state: "dormant",
            running: false
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for list in [
            NamespaceList(namespaces: []), NamespaceList(namespaces: [running, dormant], next: "z"),
            NamespaceList(
                namespaces: [
                    dormant,
                    NamespaceInfo(
                        remote: NamespaceEntry(
                            name: "zz",
                            owner: "n2",
                            origin: .auto,
                            locked: true,
                            ttlMilliseconds: 60_000,
                            createdAt: 5
                        )
                    ),
                ]
            ),
        ] {
            #expect(
                String(decoding: list.jsonBytes, as: UTF8.self)
                    == String(decoding: try encoder.encode(list), as: UTF8.self)
            )
        }
        #expect(HTTPHelpers.iso8601(1_764_666_768_463) == "2025-12-02T09:12:48.463Z")
        #expect(HTTPHelpers.iso8601(-1) == "1969-12-31T23:59:59.999Z")
        #expect(HTTPHelpers.iso8601(253_402_300_799_999) == "9999-12-31T23:59:59.999Z")
    }
}
