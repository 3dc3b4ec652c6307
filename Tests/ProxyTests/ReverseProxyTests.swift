import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import Proxy

/// The reverse proxy against a real upstream on a loopback port, driven through a second
/// in-process application whose route forwards with `ReverseProxy`.
@Suite("Reverse proxy")
struct ReverseProxyTests {
    /// An upstream that echoes what it received, answers slowly on `/slow`, and names the headers it got.
    static func upstream() -> some ApplicationProtocol {
        let router = Router()
        router.post("/echo") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 24)
            var headers = HTTPFields()
            headers[HTTPField.Name("x-seen-headers")!] = request.headers.map { $0.name.canonicalName }.sorted()
                .joined(separator: ",")
            headers[.connection] = "x-hop"
            headers[HTTPField.Name("x-hop")!] = "should not pass"
            return Response(status: .accepted, headers: headers, body: .init(byteBuffer: body))
        }
        router.get("/slow") { _, _ -> String in
            try await Task.sleep(for: .seconds(2))
            return "late"
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// The proxying application: everything under `/` goes to `upstream` with `limit` bytes of body.
    static func proxying(
        to upstream: String,
        client: HTTPClient,
        limit: Int,
        timeout: Duration
    )
        -> some ApplicationProtocol
    {
        let router = Router()
        let proxy = ReverseProxy(client: client)
        for method in [HTTPRequest.Method.get, .post] {
            router.on("/**", method: method) { (request: Request, _: BasicRequestContext) async throws -> Response in
                do {
                    return try await proxy.forward(
                        request,
                        upstream: upstream,
                        path: request.uri.description,
                        maxBodyBytes: limit,
                        timeout: timeout,
                        extraHeaders: [("x-added", "1")],
                        removingHeaders: ["x-secret"]
                    )
                } catch let error as ProxyError {
                    return Response(
                        status: .init(code: error.status),
                        body: .init(byteBuffer: ByteBuffer(string: error.code.description))
                    )
                }
            }
        }
        return Application(router: router)
    }

    static func withProxy(
        limit: Int = 1 << 20,
        timeout: Duration = .seconds(5),
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let client = ReverseProxy.makeClient()
        do {
            try await Self.upstream().test(.live) { upstream in
                let base = "http://127.0.0.1:\(upstream.port!)"
                try await Self.proxying(to: base, client: client, limit: limit, timeout: timeout).test(.router, body)
            }
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    @Test func forwardsBodiesAndEndToEndHeadersOnly() async throws {
        try await Self.withProxy { client in
            var headers = HTTPFields()
            headers[HTTPField.Name("x-secret")!] = "node only"
            headers[HTTPField.Name("x-client")!] = "kept"
            headers[.connection] = "x-client-hop"
            headers[HTTPField.Name("x-client-hop")!] = "dropped"
            let payload = String(repeating: "sql ", count: 10_000)
            let response = try await client.execute(
                uri: "/echo?x=1",
                method: .post,
                headers: headers,
                body: ByteBuffer(string: payload)
            )
            #expect(response.status == .accepted)
            #expect(String(buffer: response.body) == payload)
            let seen = response.headers[HTTPField.Name("x-seen-headers")!] ?? ""
            #expect(seen.contains("x-client") && seen.contains("x-added"))
            #expect(!seen.contains("x-secret") && !seen.contains("x-client-hop"))
            #expect(response.headers[HTTPField.Name("x-hop")!] == nil)
        }
    }

    @Test func refusesBodiesOverTheLimit() async throws {
        try await Self.withProxy(limit: 1000) { client in
            let response = try await client.execute(
                uri: "/echo",
                method: .post,
                body: ByteBuffer(string: String(repeating: "x", count: 5000))
            )
            #expect(response.status == .contentTooLarge)
            #expect(String(buffer: response.body) == "PAYLOAD_TOO_LARGE")
        }
    }

    @Test func answersATimeoutWhenTheUpstreamIsSlow() async throws {
        try await Self.withProxy(timeout: .milliseconds(300)) { client in
            let response = try await client.execute(uri: "/slow", method: .get)
            #expect(response.status == .gatewayTimeout)
            #expect(String(buffer: response.body) == "UPSTREAM_TIMEOUT")
        }
    }

    @Test func answersUnreachableWhenNobodyListens() async throws {
        let client = ReverseProxy.makeClient()
        defer { Task { try? await client.shutdown() } }
        try await Self.proxying(to: "http://127.0.0.1:1", client: client, limit: 1000, timeout: .seconds(2))
            .test(.router) { client in
                let response = try await client.execute(uri: "/echo", method: .get)
                #expect(response.status == .badGateway)
            }
    }
}
