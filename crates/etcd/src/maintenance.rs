//! Maintenance and Cluster. Membership is Strom's (`strom cluster`), not etcd's: the calls
//! that would change it answer UNIMPLEMENTED saying so.

use etcd_client::proto::*;
use strom_kv::{AlarmAction, AlarmType, Command, Output};
use tonic::{Request, Response, Status};

use crate::service::Svc;
use crate::status;

type Reply<T> = Result<Response<T>, Status>;

/// The etcd API version Strom answers as (Status.version): its semantics are etcd 3.5's.
const API_VERSION: &str = "3.5.0";

fn alarm_out(list: Vec<(u64, AlarmType)>) -> Vec<PbAlarmMember> {
    list.into_iter()
        .map(|(member_id, a)| PbAlarmMember {
            member_id,
            alarm: match a {
                AlarmType::NoSpace => 1,
                AlarmType::Corrupt => 2,
            },
        })
        .collect()
}

#[tonic::async_trait]
impl PbMaintenanceService for Svc {
    async fn alarm(&self, request: Request<PbAlarmRequest>) -> Reply<PbAlarmResponse> {
        // Listing alarms is open; raising or disarming one is administration.
        if let (Some(a), 1 | 2) = (self.authz(), request.get_ref().action) {
            a.check_admin(&request)?;
        }
        let req = request.into_inner();
        let alarm = match req.alarm {
            2 => AlarmType::Corrupt,
            _ => AlarmType::NoSpace,
        };
        let action = match req.action {
            1 => AlarmAction::Activate,
            2 => AlarmAction::Deactivate,
            _ => {
                let (alarms, revision) = {
                    let m = self.machine();
                    (m.store.alarms(), m.store.revision())
                };
                return Ok(Response::new(PbAlarmResponse {
                    header: Some(self.header(revision)),
                    alarms: alarm_out(alarms),
                }));
            }
        };
        let cmd = Command::Alarm {
            action,
            member: req.member_id,
            alarm,
        };
        match self.propose(cmd).await? {
            (Output::Alarm(list), revision) => Ok(Response::new(PbAlarmResponse {
                header: Some(self.header(revision)),
                alarms: alarm_out(list),
            })),
            (other, _) => Err(Status::internal(format!("unexpected result {other:?}"))),
        }
    }

    async fn status(&self, _request: Request<PbStatusRequest>) -> Reply<PbStatusResponse> {
        let (revision, size, applied, alarms) = {
            let m = self.machine();
            (
                m.store.revision(),
                m.store.size(),
                m.store.applied(),
                m.store.alarms(),
            )
        };
        let raft = self.journal().raft_status();
        let (leader, term, index) = raft
            .map(|s| (s.role.leader.unwrap_or(0), s.role.term, s.last_index))
            .unwrap_or((0, 0, 0));
        Ok(Response::new(PbStatusResponse {
            header: Some(self.header(revision)),
            version: API_VERSION.into(),
            db_size: (size + self.journal().log_bytes()) as i64,
            leader,
            raft_index: index,
            raft_term: term,
            raft_applied_index: self.journal().applied_index().max(applied),
            errors: alarms
                .iter()
                .map(|(m, a)| format!("memberID:{m:x} alarm:{a:?}").to_uppercase())
                .collect(),
            db_size_in_use: size as i64,
            is_learner: false,
            db_size_quota: self.config().quota_bytes as i64,
            ..PbStatusResponse::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Reply<PbDefragmentResponse> {
        // Nothing to defragment: compaction frees memory at once and snapshots rewrite the
        // state whole.
        let revision = self.machine().store.revision();
        Ok(Response::new(PbDefragmentResponse {
            header: Some(self.header(revision)),
        }))
    }

    async fn hash(&self, _request: Request<PbHashRequest>) -> Reply<PbHashResponse> {
        let (hash, revision) = self.machine().store.hash(0).map_err(status::kv)?;
        Ok(Response::new(PbHashResponse {
            header: Some(self.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(&self, request: Request<PbHashKvRequest>) -> Reply<PbHashKvResponse> {
        let rev = request.into_inner().revision;
        let (hash, hash_revision, compact_revision, current) = {
            let m = self.machine();
            let (h, r) = m.store.hash(rev).map_err(status::kv)?;
            (h, r, m.store.compacted(), m.store.revision())
        };
        Ok(Response::new(PbHashKvResponse {
            header: Some(self.header(current)),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    type SnapshotStream = futures::stream::Empty<Result<PbSnapshotResponse, Status>>;

    async fn snapshot(&self, _request: Request<PbSnapshotRequest>) -> Reply<Self::SnapshotStream> {
        Err(status::unsupported(
            "Snapshot (an etcd snapshot is a bbolt file)",
            "back up Strom's data directory instead",
        ))
    }

    async fn move_leader(
        &self,
        _request: Request<PbMoveLeaderRequest>,
    ) -> Reply<PbMoveLeaderResponse> {
        Err(status::unsupported(
            "MoveLeader",
            "leadership is Strom's own",
        ))
    }

    async fn downgrade(&self, _request: Request<PbDowngradeRequest>) -> Reply<PbDowngradeResponse> {
        Err(status::unsupported(
            "Downgrade",
            "there is no etcd version to downgrade",
        ))
    }
}

#[tonic::async_trait]
impl PbClusterService for Svc {
    async fn member_add(&self, _r: Request<PbMemberAddRequest>) -> Reply<PbMemberAddResponse> {
        Err(status::unsupported(
            "MemberAdd",
            "add a node with `strom serve --join`",
        ))
    }

    async fn member_remove(
        &self,
        _r: Request<PbMemberRemoveRequest>,
    ) -> Reply<PbMemberRemoveResponse> {
        Err(status::unsupported(
            "MemberRemove",
            "remove a node with `strom cluster remove`",
        ))
    }

    async fn member_update(
        &self,
        _r: Request<PbMemberUpdateRequest>,
    ) -> Reply<PbMemberUpdateResponse> {
        Err(status::unsupported(
            "MemberUpdate",
            "node addresses are Strom's `--peers`",
        ))
    }

    async fn member_promote(
        &self,
        _r: Request<PbMemberPromoteRequest>,
    ) -> Reply<PbMemberPromoteResponse> {
        Err(status::unsupported(
            "MemberPromote",
            "Strom promotes learners itself",
        ))
    }

    async fn member_list(&self, _r: Request<PbMemberListRequest>) -> Reply<PbMemberListResponse> {
        let revision = self.machine().store.revision();
        let me = PbMember {
            id: self.member_id(),
            name: self.name.clone(),
            peer_ur_ls: Vec::new(),
            client_ur_ls: vec![self.config().client_url.clone()],
            is_learner: false,
        };
        let mut members = vec![me];
        if let Some(cluster) = self.cluster() {
            // The other members of the key-value group (voters and learners), with the
            // addresses they registered with the controller.
            let state = cluster.state();
            let (voters, learners) = self
                .journal()
                .raft_status()
                .map(|s| (s.voters, s.learners))
                .unwrap_or_default();
            let urls = |id: u64| {
                let node = state.nodes.get(&id);
                let peer = node.map(|n| vec![format!("http://{}", n.raft_addr)]);
                let client = node.and_then(|n| n.endpoints.get("etcd")).cloned();
                (peer.unwrap_or_default(), client.into_iter().collect())
            };
            members[0].is_learner = learners.contains(&self.member_id());
            let others = voters.iter().map(|id| (*id, false));
            let others = others.chain(learners.iter().map(|id| (*id, true)));
            for (id, is_learner) in others.filter(|(id, _)| *id != self.member_id()) {
                let (peer_ur_ls, client_ur_ls) = urls(id);
                members.push(PbMember {
                    id,
                    name: format!("strom-{id}"),
                    peer_ur_ls,
                    client_ur_ls,
                    is_learner,
                });
            }
            members[0].peer_ur_ls = urls(self.member_id()).0;
        }
        Ok(Response::new(PbMemberListResponse {
            header: Some(self.header(revision)),
            members,
        }))
    }
}
