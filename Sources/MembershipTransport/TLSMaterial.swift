import Crypto
import Foundation
import NIOSSL
import Synchronization
import X509

/// The cluster CA, this node's certificate and key, loaded from PEM files and reloaded when a file
/// changes on disk (certificate rotation without a restart).
public final class TLSMaterial: Sendable {
    public let caPath: String
    public let certificatePath: String
    public let keyPath: String

    private struct Loaded: Sendable {
        var server: NIOSSLContext
        var client: NIOSSLContext
        var clientConfiguration: TLSConfiguration
        var stamp: [String]
        var generation = 0
    }

    private let loaded: Mutex<Loaded>

    public init(caPath: String, certificatePath: String, keyPath: String) throws(MembershipTransportError) {
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.loaded = Mutex(try Self.load(caPath: caPath, certificatePath: certificatePath, keyPath: keyPath))
    }

    /// Contexts for accepting and for connecting (both require and verify the peer's certificate
    /// against the cluster CA).
    public var contexts: (server: NIOSSLContext, client: NIOSSLContext) {
        self.loaded.withLock { ($0.server, $0.client) }
    }

    /// The client configuration (for HTTP clients that build their own contexts) and a generation
    /// number that grows with every reload.
    public var clientConfiguration: (configuration: TLSConfiguration, generation: Int) {
        self.loaded.withLock { ($0.clientConfiguration, $0.generation) }
    }

    /// Reloads the files if any of them changed. Returns true when new material is in use; a file
    /// that does not load keeps the previous material and throws.
    @discardableResult
    public func reloadIfChanged() throws(MembershipTransportError) -> Bool {
        let stamp = Self.stamp([self.caPath, self.certificatePath, self.keyPath])
        guard stamp != self.loaded.withLock({ $0.stamp }) else { return false }
        var fresh = try Self.load(caPath: self.caPath, certificatePath: self.certificatePath, keyPath: self.keyPath)
        self.loaded.withLock {
            fresh.generation = $0.generation + 1
            $0 = fresh
        }
        return true
    }

    /// What identifies the files' current contents: each path with symbolic links resolved (a
    /// Kubernetes Secret volume swaps its `..data` link, so the link paths themselves never change)
    /// and the SHA-256 of what it holds now.
    private static func stamp(_ paths: [String]) -> [String] {
        paths.map { path in
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            guard let contents = FileManager.default.contents(atPath: resolved) else { return resolved + " missing" }
            return resolved + " " + SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined()
        }
    }

    private static func load(
        caPath: String,
        certificatePath: String,
        keyPath: String
    ) throws(MembershipTransportError)
        -> Loaded
    {
        do {
            let cas = try NIOSSLCertificate.fromPEMFile(caPath)
            let chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
            let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            guard !cas.isEmpty, !chain.isEmpty else { throw MembershipTransportError.tlsMaterial("empty PEM file") }
            var server = TLSConfiguration.makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key),
                trustRoots: .certificates(cas)
            )
            server.minimumTLSVersion = .tlsv13
            // A peer that does not answer close_notify (an idle pooled client) must not hold a
            // closing connection, and with it a node's shutdown, for NIOSSL's default 5 s.
            server.shutdownTimeout = .seconds(1)
            var client = TLSConfiguration.makeClientConfiguration()
            client.certificateChain = chain.map { .certificate($0) }
            client.privateKey = .privateKey(key)
            client.trustRoots = .certificates(cas)
            client.minimumTLSVersion = .tlsv13
            client.shutdownTimeout = .seconds(1)
            // Peers are addressed by host:port; who they are is checked from their certificate against
            // the node id in every frame they send, not from the host name.
            client.certificateVerification = .noHostnameVerification
            return Loaded(
                server: try NIOSSLContext(configuration: server),
                client: try NIOSSLContext(configuration: client),
                clientConfiguration: client,
                stamp: self.stamp([caPath, certificatePath, keyPath])
            )
        } catch let error as MembershipTransportError {
            throw error
        } catch {
            throw .tlsMaterial(
                "cannot load TLS material (CA \(caPath), certificate \(certificatePath), key \(keyPath)): \(error)"
            )
        }
    }

    /// The identities a certificate vouches for: its common name and DNS subject alternative names.
    public static func identities(of certificate: NIOSSLCertificate) -> Set<String> {
        guard let parsed = try? Certificate(derEncoded: certificate.toDERBytes()) else { return [] }
        var names = Set<String>()
        for rdn in parsed.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                names.insert(String(describing: attribute.value))
            }
        }
        if let sans = try? parsed.extensions.subjectAlternativeNames {
            for name in sans {
                if case .dnsName(let dns) = name { names.insert(dns) }
            }
        }
        return names
    }
}
