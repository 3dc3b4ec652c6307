import Consensus
import Testing

@testable import Autopilot

extension Autopilot {
    /// One step as the leader `n1` sees it.
    mutating func at(_ now: Duration, _ members: [Member], commit: UInt64 = 100, pending: Bool = false) -> Action? {
        self.step(members: members, leader: ReplicaID(1), commitIndex: commit, pendingChange: pending, now: now)
    }
}

@Suite("Autopilot")
struct AutopilotTests {
    static func member(
        _ id: UInt64,
        zone: String = "a",
        voter: Bool = false,
        witness: Bool = false,
        health: Autopilot.Health = .alive,
        match: UInt64 = 100
    ) -> Autopilot.Member {
        Autopilot.Member(
            id: ReplicaID(id),
            zone: zone,
            isVoter: voter,
            isWitness: witness,
            health: health,
            matchIndex: match
        )
    }

    static var configuration: Autopilot.Configuration {
        var configuration = Autopilot.Configuration()
        configuration.stabilization = .seconds(10)
        configuration.deadVoterGrace = .seconds(60)
        return configuration
    }

    @Test func aClusterStartedOneNodeAtATimeEndsWithThreeVotersAcrossZones() {
        var pilot = Autopilot(configuration: Self.configuration)
        var members = [Self.member(1, zone: "a", voter: true)]
        members += [Self.member(2, zone: "a"), Self.member(3, zone: "b"), Self.member(4, zone: "c")]
        // Not stable yet: nothing.
        #expect(
            pilot.at(.zero, members)
                == nil
        )
        #expect(
            pilot.at(.seconds(9), members)
                == nil
        )
        // Stable: the zones without a voter first.
        #expect(
            pilot.at(
                .seconds(10),
                members
            ) == .promote(ReplicaID(3))
        )
        members[2].isVoter = true
        #expect(
            pilot.at(.seconds(11), members, pending: true)
                == nil
        )
        #expect(
            pilot.at(
                .seconds(11),
                members
            ) == .promote(ReplicaID(4))
        )
        members[3].isVoter = true
        #expect(
            pilot.at(
                .seconds(12),
                members
            ) == nil
        )
    }

    @Test func aLaggingOrSuspectLearnerIsNotPromoted() {
        var pilot = Autopilot(configuration: Self.configuration)
        let members = [
            Self.member(1, voter: true), Self.member(2, match: 10), Self.member(3, health: .suspect),
        ]
        for second in 0...30 {
            #expect(
                pilot.at(
                    .seconds(second),
                    members,
                    commit: 5000
                ) == nil
            )
        }
    }

    @Test func twoMembersGetNoAutomaticDecision() {
        var pilot = Autopilot(configuration: Self.configuration)
        let members = [Self.member(1, voter: true), Self.member(2)]
        #expect(
            pilot.at(
                .seconds(100),
                members
            ) == nil
        )
    }

    @Test func aDeadVoterIsReplacedOnlyAfterTheGraceAndNeverBelowTheMinimum() {
        var pilot = Autopilot(configuration: Self.configuration)
        var members = [
            Self.member(1, zone: "a", voter: true), Self.member(2, zone: "b", voter: true),
            Self.member(3, zone: "c", voter: true, health: .dead(since: .seconds(0))), Self.member(4, zone: "c"),
        ]
        #expect(
            pilot.at(.zero, members)
                == nil
        )
        #expect(
            pilot.at(
                .seconds(59),
                members
            ) == nil
        )
        #expect(
            pilot.at(
                .seconds(60),
                members
            ) == .removeVoter(ReplicaID(3))
        )
        members.remove(at: 2)
        #expect(
            pilot.at(
                .seconds(61),
                members
            ) == .promote(ReplicaID(4))
        )
        // Two voters, one dead: removing it would leave one (below the minimum of two).
        var pilot2 = Autopilot(configuration: Self.configuration)
        let pair = [
            Self.member(1, voter: true), Self.member(2, voter: true, health: .dead(since: .zero)),
            Self.member(3, health: .suspect),
        ]
        #expect(
            pilot2.at(.seconds(600), pair)
                == nil
        )
        // The leader itself is never removed, even when gossip thinks it is dead.
        var pilot3 = Autopilot(configuration: Self.configuration)
        let leaderDead = [
            Self.member(1, voter: true, health: .dead(since: .zero)), Self.member(2, voter: true),
            Self.member(3, voter: true),
        ]
        #expect(
            pilot3.at(
                .seconds(600),
                leaderDead
            ) == nil
        )
    }

    @Test func witnessesArePromotedFirstAndSurplusVotersDemotedAfterTheStabilization() {
        var pilot = Autopilot(configuration: Self.configuration)
        let members = [Self.member(1, voter: true), Self.member(2), Self.member(3, witness: true)]
        _ = pilot.at(.zero, members)
        #expect(
            pilot.at(
                .seconds(10),
                members
            ) == .promote(ReplicaID(3))
        )
        var surplus = Autopilot(configuration: Self.configuration)
        let five = (1...5).map { Self.member(UInt64($0), zone: $0 <= 3 ? "a" : "b", voter: true) }
        #expect(
            surplus.at(.zero, five) == nil
        )
        #expect(
            surplus.at(.seconds(10), five)
                == .demote(ReplicaID(3))
        )
    }

    /// Seeded runs: members join, lag, turn suspect, die and come back; the leader applies every
    /// change the autopilot proposes. Checked at every step: no decision on two members, the leader
    /// is never removed or demoted, removals never go below the minimum or remove a live voter, only
    /// stable caught-up learners are promoted; once health settles the voters reach the target.
    @Test(arguments: 0..<200) func seededRunsKeepTheRules(seed: UInt64) {
        var random = SplitMix64(seed: seed &* 0x9E37_79B9 &+ 1)
        var configuration = Self.configuration
        configuration.targetVoters = [1, 3, 5][Int(random.below(3))]
        var pilot = Autopilot(configuration: configuration)
        let count = 1 + Int(random.below(7))
        var members = (1...count).map { Self.member(UInt64($0), zone: ["a", "b", "c"][Int(random.below(3))]) }
        members[0].isVoter = true
        let leader = ReplicaID(1)
        var stableSince: [UInt64: Duration] = [:]
        var commit: UInt64 = 100
        for second in 0..<400 {
            let now = Duration.seconds(second)
            let settled = second >= 250
            if !settled {
                for index in members.indices.dropFirst() where random.below(20) == 0 {
                    switch random.below(4) {
                    case 0: members[index].health = .suspect
                    case 1: members[index].health = .dead(since: now)
                    case 2: members[index].matchIndex = commit / 2
                    default: members[index].health = .alive
                    }
                }
            } else {
                for index in members.indices { members[index].health = .alive }
            }
            commit += 10
            for index in members.indices where members[index].health == .alive && random.below(3) != 0 || settled {
                members[index].matchIndex = commit
            }
            for member in members {
                if member.health == .alive && member.matchIndex + configuration.maximumLag >= commit {
                    stableSince[member.id.rawValue] = stableSince[member.id.rawValue] ?? now
                } else {
                    stableSince[member.id.rawValue] = nil
                }
            }
            let before = members
            guard
                let action = pilot.step(
                    members: members,
                    leader: leader,
                    commitIndex: commit,
                    pendingChange: false,
                    now: now
                )
            else { continue }
            #expect(before.count > 2, "seed \(seed): a decision on \(before.count) members")
            let voters = before.filter(\.isVoter).count
            switch action {
            case .promote(let id):
                let member = before.first { $0.id == id }!
                #expect(!member.isVoter)
                #expect(
                    now - (stableSince[id.rawValue] ?? now) >= configuration.stabilization,
                    "seed \(seed): unstable promotion"
                )
                members[members.firstIndex { $0.id == id }!].isVoter = true
            case .removeVoter(let id):
                #expect(id != leader)
                #expect(voters - 1 >= configuration.minimumQuorum)
                let member = before.first { $0.id == id }!
                guard case .dead = member.health else {
                    Issue.record("seed \(seed): removed a voter that is not dead")
                    continue
                }
                members.removeAll { $0.id == id }
                // It comes back later as a learner (a new join through the log).
                var returning = member
                returning.isVoter = false
                returning.health = .alive
                members.append(returning)
            case .demote(let id):
                #expect(id != leader)
                #expect(voters > configuration.targetVoters)
                members[members.firstIndex { $0.id == id }!].isVoter = false
            }
        }
        let voters = members.filter(\.isVoter).count
        if members.count > 2 {
            #expect(
                voters == min(configuration.targetVoters, members.count),
                "seed \(seed): \(voters) voters of \(members.count)"
            )
        }
    }
}
