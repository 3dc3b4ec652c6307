import Foundation
import MembershipTransport

/// `turso-server certs`: creates a cluster CA and node certificates for mutual TLS between nodes.
///
///     turso-server certs ca --out DIR [--days N]
///     turso-server certs node --ca-dir DIR --name NODE_ID [--host HOST_OR_IP]... --out DIR [--days N]
public enum CertsCommand {
    public static let usage = """
        usage: turso-server certs ca --out DIR [--days N]
               turso-server certs node --ca-dir DIR --name NODE_ID [--host HOST_OR_IP]... --out DIR [--days N]
        Writes ca.pem/ca-key.pem, or <NODE_ID>.pem/<NODE_ID>-key.pem (keys with mode 0600).
        """

    public static func run(_ arguments: [String]) -> Int32 {
        var rest = arguments[...]
        guard let kind = rest.popFirst() else {
            FileHandle.standardError.write(Data((usage + "\n").utf8))
            return 2
        }
        var options: [String: [String]] = [:]
        while let flag = rest.popFirst() {
            guard flag.hasPrefix("--"), let value = rest.popFirst() else {
                FileHandle.standardError.write(
                    Data("turso-server certs: expected --flag value, got \(flag)\n\(usage)\n".utf8)
                )
                return 2
            }
            options[String(flag.dropFirst(2)), default: []].append(value)
        }
        func one(_ key: String) -> String? { options[key]?.last }
        let days = one("days").flatMap(Int.init)
        do {
            switch kind {
            case "ca":
                guard let out = one("out") else { throw CommandError("--out is required") }
                let ca = try ClusterCertificates.makeCA(validFor: days ?? 3650)
                try ClusterCertificates.write(ca, name: "ca", directory: out)
                print("wrote \(out)/ca.pem and \(out)/ca-key.pem")
            case "node":
                guard let caDirectory = one("ca-dir"), let name = one("name"), let out = one("out") else {
                    throw CommandError("--ca-dir, --name and --out are required")
                }
                let ca = try ClusterCertificates.read(name: "ca", directory: caDirectory)
                let node = try ClusterCertificates.makeNode(
                    nodeID: name,
                    hosts: options["host"] ?? [],
                    ca: ca,
                    notValidAfter: Date() + Double(days ?? 825) * 86400
                )
                try ClusterCertificates.write(node, name: name, directory: out)
                print("wrote \(out)/\(name).pem and \(out)/\(name)-key.pem")
            default:
                throw CommandError("unknown certs command \(kind)")
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("turso-server certs: \(error)\n".utf8))
            return 1
        }
    }

    struct CommandError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
