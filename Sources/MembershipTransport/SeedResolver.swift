import Foundation
import NIOPosix
import ServerSupport

/// Turns seed entries (`host:port`) into gossip addresses. A DNS name may stand for many members (a
/// Kubernetes headless Service resolves to every pod), so names are resolved to all their addresses.
public enum SeedResolver {
    /// The seeds usable without DNS: IP literals, kept as given.
    static func literalSeeds(_ seeds: [String]) -> [String] {
        seeds.filter { Self.split($0).map { Self.isIPLiteral($0.host) } ?? false }
    }

    static func needsResolution(_ seeds: [String]) -> Bool { Self.literalSeeds(seeds).count != seeds.count }

    /// Every seed with each DNS name replaced by all its addresses (sorted, deduplicated). A name that
    /// does not resolve (yet) contributes nothing.
    static func resolve(_ seeds: [String]) async -> [String] {
        var result = Set<String>()
        for seed in seeds {
            guard let (host, port) = Self.split(seed) else { continue }
            if Self.isIPLiteral(host) {
                result.insert(seed)
                continue
            }
            let addresses = (try? await NIOThreadPool.singleton.runIfActive { Self.addresses(of: host) }) ?? []
            for address in addresses {
                result.insert(HostPort(host: address, port: port).description)
            }
        }
        return result.sorted()
    }

    static func split(_ seed: String) -> (host: String, port: Int)? {
        guard let parsed = HostPort(seed), !parsed.host.isEmpty else { return nil }
        return (parsed.host, parsed.port)
    }

    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Blocking getaddrinfo: every TCP address of `host` (IPv4 only with `ipv4Only`).
    public static func addresses(of host: String, ipv4Only: Bool = false) -> [String] {
        var hints = addrinfo()
        if ipv4Only { hints.ai_family = AF_INET }
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(
                entry.pointee.ai_addr,
                entry.pointee.ai_addrlen,
                &buffer,
                socklen_t(buffer.count),
                nil,
                0,
                NI_NUMERICHOST
            ) == 0 {
                addresses.append(
                    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                )
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }
}
