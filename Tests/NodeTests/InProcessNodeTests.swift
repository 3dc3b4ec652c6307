import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import Node

/// The admin and data listeners of a node built in-process (`NodeAssembly`), driven through
/// HummingbirdTesting without a process or a port. Backends are real: the built `turso-sync-server`.
@Suite("Node routes in process")
struct InProcessNodeTests {
    static let adminToken = "admin-token"
    static let dataToken = "data-token"

    /// A node over a fresh data directory; `body` gets it, and its backends are stopped afterwards.
    static func withNode(
        _ environment: [String: String] = [:],
        _ body: (NodeAssembly) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("node-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var env = [
            "TURSO_DATA_DIR": directory, "TURSO_ADMIN_TOKEN": Self.adminToken, "TURSO_AUTH_TOKEN": Self.dataToken,
            "TURSODB_BIN": root.appendingPathComponent(".build/debug/turso-sync-server").path,
            "TURSO_BACKEND_PORT_START": "\(20_000 + Int.random(in: 0..<10_000))",
        ]
        env["TURSO_BACKEND_PORT_END"] = "\(Int(env["TURSO_BACKEND_PORT_START"]!)! + 20)"
        env.merge(environment) { $1 }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let node = try NodeAssembly(configuration: NodeConfiguration(environment: env), logger: logger)
        defer { node.stop() }
        do {
            try await node.start()
            try await body(node)
        } catch {
            await node.service.supervisor.stopAll(timeout: .seconds(5))
            await node.shutdownClients()
            throw error
        }
        await node.service.supervisor.stopAll(timeout: .seconds(5))
        await node.shutdownClients()
    }

    static func headers(_ token: String?) -> HTTPFields {
        var fields = HTTPFields()
        if let token { fields[.authorization] = "Bearer \(token)" }
        fields[.contentType] = "application/json"
        return fields
    }

    /// The `{"error":{"message","code"}}` body of an error response.
    static func error(_ response: TestResponse) throws -> (code: String, message: String) {
        let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
        let error = try #require(object?["error"] as? [String: Any])
        return (try #require(error["code"] as? String), try #require(error["message"] as? String))
    }

    @Test func adminAuthenticationProbesAndMetrics() async throws {
        try await Self.withNode { node in
            try await node.adminApplication.test(.router) { client in
                for path in ["/healthz", "/readyz"] {
                    let probe = try await client.execute(uri: path, method: .get)
                    #expect(probe.status == .ok, "\(path)")
                }
                for token in [nil, "wrong", "admin-token-but-longer"] {
                    let refused = try await client.execute(
                        uri: "/v1/namespaces",
                        method: .get,
                        headers: Self.headers(token)
                    )
                    #expect(refused.status == .unauthorized)
                    #expect(refused.headers[.wwwAuthenticate] == "Bearer")
                    #expect(try Self.error(refused).code == "UNAUTHORIZED")
                }
                let listed = try await client.execute(
                    uri: "/v1/namespaces",
                    method: .get,
                    headers: Self.headers(Self.adminToken)
                )
                #expect(listed.status == .ok)
                let metrics = try await client.execute(
                    uri: "/metrics",
                    method: .get,
                    headers: Self.headers(Self.adminToken)
                )
                let text = String(buffer: metrics.body)
                #expect(text.contains("turso_http_requests_total{listener=\"admin\",status=\"401\"} 3"))
                #expect(text.contains("turso_namespaces_registered 0"))
            }
        }
    }

    @Test func namespaceLifecycleErrorsAndStatuses() async throws {
        try await Self.withNode { node in
            try await node.adminApplication.test(.router) { client in
                let auth = Self.headers(Self.adminToken)
                let created = try await client.execute(uri: "/v1/namespaces/app/create", method: .post, headers: auth)
                #expect(created.status == .created)
                let again = try await client.execute(uri: "/v1/namespaces/app/create", method: .post, headers: auth)
                #expect(again.status == .conflict)
                #expect(try Self.error(again).code == "NAMESPACE_EXISTS")
                let cases: [(String, HTTPRequest.Method, String?, HTTPResponse.Status, String)] = [
                    ("/v1/namespaces/Bad.Name/create", .post, nil, .badRequest, "INVALID_NAMESPACE"),
                    ("/v1/namespaces/missing", .get, nil, .notFound, "NOT_FOUND"),
                    ("/v1/namespaces/app/lock", .put, nil, .methodNotAllowed, "METHOD_NOT_ALLOWED"),
                    ("/v1/namespaces/app/ttl", .post, "{\"ttl\":\"99999999999999999h\"}", .badRequest, "BAD_REQUEST"),
                    ("/v1/namespaces/app/ttl", .post, "{oops", .badRequest, "BAD_REQUEST"),
                    ("/v1/nothing", .get, nil, .notFound, "NOT_FOUND"),
                ]
                for (uri, method, body, status, code) in cases {
                    let response = try await client.execute(
                        uri: uri,
                        method: method,
                        headers: auth,
                        body: body.map { ByteBuffer(string: $0) }
                    )
                    #expect(response.status == status, "\(method) \(uri)")
                    #expect(try Self.error(response).code == code, "\(method) \(uri)")
                }
                let ttl = try await client.execute(
                    uri: "/v1/namespaces/app/ttl",
                    method: .post,
                    headers: auth,
                    body: ByteBuffer(string: "{\"ttl\":\"30d\"}")
                )
                #expect(String(buffer: ttl.body).contains("\"ttl\":\"720h0m0s\""))
                let deleted = try await client.execute(uri: "/v1/namespaces/app", method: .delete, headers: auth)
                #expect(deleted.status == .ok)
                let gone = try await client.execute(uri: "/v1/namespaces/app", method: .get, headers: auth)
                #expect(gone.status == .notFound)
            }
        }
    }

    @Test func dataRoutesAuthenticateValidateAndProxy() async throws {
        try await Self.withNode(["TURSO_ALLOW_AUTO_PROVISION": "false"]) { node in
            try await node.dataApplication.test(.router) { client in
                let pipeline = ByteBuffer(
                    string: #"{"requests":[{"type":"execute","stmt":{"sql":"SELECT 40 + 2"}},{"type":"close"}]}"#
                )
                let anonymous = try await client.execute(uri: "/app/v2/pipeline", method: .post, body: pipeline)
                #expect(anonymous.status == .unauthorized)
                let auth = Self.headers(Self.dataToken)
                let badName = try await client.execute(
                    uri: "/_state/v2/pipeline",
                    method: .post,
                    headers: auth,
                    body: pipeline
                )
                #expect(badName.status == .badRequest)
                #expect(try Self.error(badName).code == "INVALID_NAMESPACE")
                let unknown = try await client.execute(
                    uri: "/app/v2/pipeline",
                    method: .post,
                    headers: auth,
                    body: pipeline
                )
                #expect(unknown.status == .notFound)
                _ = try await node.service.create("app")
                let answered = try await client.execute(
                    uri: "/app/v2/pipeline",
                    method: .post,
                    headers: auth,
                    body: pipeline
                )
                #expect(answered.status == .ok)
                #expect(String(buffer: answered.body).contains(#""value":"42""#))
            }
        }
    }
}

extension InProcessNodeTests {
    @Test func dataErrorsLimitsAndShutdown() async throws {
        try await Self.withNode(["TURSO_MAX_NAMESPACES": "1", "TURSO_MAX_BODY_BYTES": "2048"]) { node in
            try await node.dataApplication.test(.router) { client in
                let auth = Self.headers(Self.dataToken)
                let pipeline = ByteBuffer(string: #"{"requests":[{"type":"close"}]}"#)
                let first = try await client.execute(
                    uri: "/one/v2/pipeline",
                    method: .post,
                    headers: auth,
                    body: pipeline
                )
                #expect(first.status == .ok)
                let capped = try await client.execute(
                    uri: "/two/v2/pipeline",
                    method: .post,
                    headers: auth,
                    body: pipeline
                )
                #expect(capped.status == .tooManyRequests)
                #expect(try Self.error(capped).code == "LIMIT_REACHED")
                let big = try await client.execute(
                    uri: "/one/v2/pipeline",
                    method: .post,
                    headers: auth,
                    body: ByteBuffer(string: String(repeating: " ", count: 4096) + #"{"requests":[]}"#)
                )
                #expect(big.status == .contentTooLarge)
                #expect(try Self.error(big).code == "PAYLOAD_TOO_LARGE")
                let root = try await client.execute(uri: "/", method: .get, headers: auth)
                #expect(root.status == .notFound)
                node.lifecycle.stopAccepting()
                let late = try await client.execute(
                    uri: "/one/v2/pipeline",
                    method: .post,
                    headers: auth,
                    body: pipeline
                )
                #expect(late.status == .serviceUnavailable)
                #expect(late.headers[.retryAfter] == "1")
                #expect(try Self.error(late).code == "SHUTTING_DOWN")
            }
        }
    }

    @Test func peerRoutesCheckTheProtocolVersionAndOffsets() async throws {
        try await Self.withNode(["TURSO_INSECURE_CLUSTER": "true", "TURSO_NODE_ID": "solo"]) { node in
            // A clustered node creates nothing before its cluster log is open.
            await #expect(throws: NodeError.self) { _ = try await node.service.create("app") }
            try await node.peerApplication.test(.router) { client in
                var future = HTTPFields()
                future[PeerProtocol.header] = "7"
                let refused = try await client.execute(uri: "/_peer/v1/status", method: .get, headers: future)
                #expect(refused.status == .badRequest)
                #expect(try Self.error(refused).code == "PEER_PROTOCOL")
                let unversioned = try await client.execute(uri: "/_peer/v1/status", method: .get)
                #expect(unversioned.status == .badRequest, "a build before the cluster log's moves")
                var current = HTTPFields()
                current[PeerProtocol.header] = String(PeerProtocol.version)
                let status = try await client.execute(uri: "/_peer/v1/status", method: .get, headers: current)
                let decoded = try JSONDecoder().decode(PeerStatus.self, from: status.body)
                #expect(decoded.id == "solo" && decoded.namespaces == 0)
                let negative = try await client.execute(
                    uri: "/_peer/v1/namespaces/app/files/wal?offset=-1",
                    method: .get,
                    headers: current
                )
                #expect(negative.status == .badRequest)
                let absent = try await client.execute(
                    uri: "/_peer/v1/namespaces/app/files/db",
                    method: .get,
                    headers: current
                )
                #expect(absent.status == .notFound)
                let badTransfer = try await client.execute(
                    uri: "/_peer/v1/namespaces/app/transfer",
                    method: .post,
                    headers: current,
                    body: ByteBuffer(string: #"{"from":"x"}"#)
                )
                #expect(badTransfer.status == .badRequest)
            }
        }
    }
}
