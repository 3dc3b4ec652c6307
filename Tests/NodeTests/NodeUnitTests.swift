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
    let planner = GarbageCollectionPlanner(autoIdleSeconds: 3600, archiveRetentionSeconds: 86400)
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
        #expect(c.startupTimeout == 5)
        #expect(c.gcInterval == 3600)
        #expect(c.autoIdleDuration == 168 * 3600)
        #expect(c.archiveRetention == 720 * 3600)
    }

    @Test func readsTheEnvironment() throws {
        let c = try NodeConfiguration(environment: [
            "TURSO_DATA_ADDR": "127.0.0.2:7000", "TURSO_GC_INTERVAL": "1m", "TURSO_ALLOW_AUTO_PROVISION": "false",
            "TURSO_MAX_RUNNING": "16", "TURSO_DATA_DIR": "/tmp/x/",
        ])
        #expect(c.dataAddress == .init(host: "127.0.0.2", port: 7000))
        #expect(c.gcInterval == 60)
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
    ])
    func rejectsInvalidValues(_ environment: [String: String]) {
        #expect(throws: NodeError.self) { try NodeConfiguration(environment: environment) }
    }
}
