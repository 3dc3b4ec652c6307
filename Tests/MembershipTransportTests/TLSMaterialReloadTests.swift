import Foundation
import MembershipTransport
import Testing

/// Certificate rotation as Kubernetes performs it: a Secret volume holds `..<timestamp>/` folders,
/// a `..data` link to the current one, and per-file links `ca.pem -> ..data/ca.pem`. A renewal writes a
/// new folder and swaps `..data` atomically; the per-file link paths never change.
@Suite("TLS material reload")
struct TLSMaterialReloadTests {
    /// Writes one version of the Secret as `..<version>/` and points `..data` at it atomically.
    static func publish(
        version: String,
        ca: ClusterCertificates.Issued,
        node: ClusterCertificates.Issued,
        in root: String
    )
        throws
    {
        let folder = "\(root)/..\(version)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try ca.certificatePEM.write(toFile: "\(folder)/ca.pem", atomically: true, encoding: .utf8)
        try node.certificatePEM.write(toFile: "\(folder)/tls.crt", atomically: true, encoding: .utf8)
        try node.keyPEM.write(toFile: "\(folder)/tls.key", atomically: true, encoding: .utf8)
        let temporary = "\(root)/..data_tmp"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: "..\(version)")
        #expect(rename(temporary, "\(root)/..data") == 0)
        for file in ["ca.pem", "tls.crt", "tls.key"]
        where (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/\(file)")) == nil {
            try FileManager.default.createSymbolicLink(atPath: "\(root)/\(file)", withDestinationPath: "..data/\(file)")
        }
    }

    @Test func aSwappedDataLinkIsReloaded() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ca = try ClusterCertificates.makeCA()
        try Self.publish(
            version: "2026_01_01",
            ca: ca,
            node: try ClusterCertificates.makeNode(nodeID: "n1", ca: ca),
            in: root
        )
        let material = try TLSMaterial(
            caPath: "\(root)/ca.pem",
            certificatePath: "\(root)/tls.crt",
            keyPath: "\(root)/tls.key"
        )
        #expect(try material.reloadIfChanged() == false)
        let before = material.clientConfiguration.generation

        // The renewal: same link paths, new target folder, and the link's own mtime may not change.
        try Self.publish(
            version: "2026_02_01",
            ca: ca,
            node: try ClusterCertificates.makeNode(nodeID: "n1", ca: ca),
            in: root
        )
        #expect(try material.reloadIfChanged() == true)
        #expect(material.clientConfiguration.generation == before + 1)
        #expect(try material.reloadIfChanged() == false)
    }

    @Test func rewrittenContentsWithTheSameTimestampAreReloaded() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let ca = try ClusterCertificates.makeCA()
        try ClusterCertificates.write(ca, name: "ca", directory: root)
        try ClusterCertificates.write(
            try ClusterCertificates.makeNode(nodeID: "n1", ca: ca),
            name: "n1",
            directory: root
        )
        let certificate = "\(root)/n1.pem"
        let material = try TLSMaterial(
            caPath: "\(root)/ca.pem",
            certificatePath: certificate,
            keyPath: "\(root)/n1-key.pem"
        )
        let stamp = try FileManager.default.attributesOfItem(atPath: certificate)[.modificationDate] as! Date
        try ClusterCertificates.write(
            try ClusterCertificates.makeNode(nodeID: "n1", ca: ca),
            name: "n1",
            directory: root
        )
        try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: certificate)
        try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: "\(root)/n1-key.pem")
        #expect(try material.reloadIfChanged() == true)
    }
}
