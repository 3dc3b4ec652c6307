import ArgumentParser
import Foundation
import MembershipTransport

/// `turso-server certs`: creates a cluster CA and node certificates for mutual TLS between nodes.
public struct CertsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Create a cluster CA and node certificates for mutual TLS between nodes.",
        discussion: "Writes ca.pem/ca-key.pem, or <NODE_ID>.pem/<NODE_ID>-key.pem (keys with mode 0600).",
        subcommands: [CA.self, Node.self]
    )

    public init() {}

    /// `turso-server certs ca --out DIR [--days N]`
    public struct CA: ParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Create the cluster CA.")

        @Option(help: "Directory for ca.pem and ca-key.pem.")
        var out: String

        @Option(help: "Validity in days (1-36500).")
        var days = 3650

        public init() {}

        public func validate() throws {
            guard (1...36_500).contains(self.days) else { throw ValidationError("--days must be between 1 and 36500") }
        }

        public func run() throws {
            let ca = try ClusterCertificates.makeCA(validFor: self.days)
            try ClusterCertificates.write(ca, name: "ca", directory: self.out)
            print("wrote \(self.out)/ca.pem and \(self.out)/ca-key.pem")
        }
    }

    /// `turso-server certs node --ca-dir DIR --name NODE_ID [--host HOST_OR_IP]... --out DIR [--days N]`
    public struct Node: ParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Create a node's certificate.")

        @Option(name: .customLong("ca-dir"), help: "Directory holding ca.pem and ca-key.pem.")
        var caDirectory: String

        @Option(help: "The node id (TURSO_NODE_ID): the certificate's CN and a DNS SAN.")
        var name: String

        @Option(name: .customLong("host"), help: "A host name or IP address to add as a SAN (repeatable).")
        var hosts: [String] = []

        @Option(help: "Directory for <name>.pem and <name>-key.pem.")
        var out: String

        @Option(help: "Validity in days (1-36500).")
        var days = 825

        public init() {}

        public func validate() throws {
            guard (1...36_500).contains(self.days) else { throw ValidationError("--days must be between 1 and 36500") }
        }

        public func run() throws {
            let ca = try ClusterCertificates.read(name: "ca", directory: self.caDirectory)
            let node = try ClusterCertificates.makeNode(
                nodeID: self.name,
                hosts: self.hosts,
                ca: ca,
                notValidAfter: Date() + Double(self.days) * 86400
            )
            try ClusterCertificates.write(node, name: self.name, directory: self.out)
            print("wrote \(self.out)/\(self.name).pem and \(self.out)/\(self.name)-key.pem")
        }
    }
}
