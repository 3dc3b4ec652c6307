import Crypto
import Foundation
import SwiftASN1
import X509

/// Creates a cluster CA and node certificates (ECDSA P-256) for development, tests and small
/// deployments: `turso-server certs`. Certificates from any other tool work the same way: a node's
/// certificate must chain to the cluster CA and name the node id as its CN or a DNS SAN.
public enum ClusterCertificates {
    public struct Issued: Sendable {
        public var certificatePEM: String
        public var keyPEM: String
    }

    /// A self-signed CA that may only sign end-entity certificates.
    public static func makeCA(
        commonName: String = "turso-server cluster CA",
        validFor days: Int = 3650
    ) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("turso-server")
            CommonName(commonName)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(key.publicKey),
            notValidBefore: now - 300,
            notValidAfter: now + Double(days) * 86400,
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key)
        )
        return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation)
    }

    /// A node certificate for `nodeID`, usable as server and client (mutual TLS), with the node id,
    /// `localhost` and `hosts` (IP addresses or DNS names) as subject alternative names.
    public static func makeNode(
        nodeID: String,
        hosts: [String] = [],
        ca: Issued,
        notValidBefore: Date = Date() - 300,
        notValidAfter: Date = Date() + 825 * 86400
    ) throws -> Issued {
        let caCertificate = try Certificate(pemEncoded: ca.certificatePEM)
        let caKey = try P256.Signing.PrivateKey(pemRepresentation: ca.keyPEM)
        let key = P256.Signing.PrivateKey()
        var names: [GeneralName] = [.dnsName(nodeID), .dnsName("localhost")]
        for host in hosts {
            if let bytes = Self.ipv4Bytes(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
            } else if !host.isEmpty, host != nodeID {
                names.append(.dnsName(host))
            }
        }
        let sans = names
        let certificate = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(key.publicKey),
            notValidBefore: notValidBefore,
            notValidAfter: notValidAfter,
            issuer: caCertificate.subject,
            subject: try DistinguishedName {
                OrganizationName("turso-server")
                CommonName(nodeID)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(sans)
                AuthorityKeyIdentifier(keyIdentifier: try caCertificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: .init(caKey)
        )
        return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation)
    }

    private static func ipv4Bytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    /// Writes `issued` as `<directory>/<name>.pem` and `<directory>/<name>-key.pem` (key mode 0600).
    public static func write(_ issued: Issued, name: String, directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificatePath = "\(directory)/\(name).pem"
        let keyPath = "\(directory)/\(name)-key.pem"
        // A final newline, so PEM files can be concatenated into bundles.
        func terminated(_ pem: String) -> String { pem.hasSuffix("\n") ? pem : pem + "\n" }
        try terminated(issued.certificatePEM).write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try terminated(issued.keyPEM).write(toFile: keyPath, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
    }

    public static func read(name: String, directory: String) throws -> Issued {
        Issued(
            certificatePEM: try String(contentsOfFile: "\(directory)/\(name).pem", encoding: .utf8),
            keyPEM: try String(contentsOfFile: "\(directory)/\(name)-key.pem", encoding: .utf8)
        )
    }
}
