//! The commands: typed arguments in, resolved plans carried out, an exit code out.
//!
//! This is where AWS, keys and RDP meet; each of them stays ignorant of the others.

use std::io::Write as _;
use std::process::ExitCode;

use tracing::info;

use crate::aws::{self, AddressChoice, Aws, PasswordData, Resolved};
use crate::cli::{host_port, Args, AwsArgs, Command, SecurityChoice, TrustCommand, TunnelChoice};
use crate::error::Error;
use crate::keyfile::{readable_by_others, KeyFileError, KeySearch};
use crate::keys::{KeyError, Password};
use crate::rdp::{self, Endpoint, TrustKey, TrustStore};
use crate::status;
use crate::target::{InstanceRef, Target};
use crate::tunnel;

/// Runs the parsed command line.
pub fn run(args: Args) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the async runtime".into(),
            source,
        })?;
    match args.command {
        Some(Command::Resolve { target, json, aws }) => {
            runtime.block_on(resolve(&target, &aws, json))
        }
        Some(Command::Password { target, aws }) => runtime.block_on(password(&target, &aws)),
        Some(Command::Tunnel {
            target,
            local_port,
            mut aws,
        }) => {
            aws.tunnel = TunnelChoice::Eice;
            runtime.block_on(serve_tunnel(&target, &aws, local_port))
        }
        Some(Command::Direct {
            server,
            user,
            domain,
            password_stdin,
            mut session,
        }) => {
            // Any RDP server: take NLA when offered, else say the password goes over TLS.
            session.security.get_or_insert(SecurityChoice::Tls);
            let (host, port) = host_port(&server, aws::RDP_PORT).map_err(Error::Usage)?;
            let password = rdp::read_password(password_stdin)?;
            let endpoint = Endpoint {
                title: format!("{host}:{port}"),
                trust_key: TrustKey::new(format!("{host}:{port}")),
                host,
                port,
                user,
                domain,
                password,
            };
            crate::launch::run(runtime, endpoint, None, &session)
        }
        Some(Command::Trust { command }) => trust(command),
        Some(Command::RdpFile {
            target,
            output,
            size,
            aws,
        }) => runtime.block_on(rdp_file(&target, &aws, output, size)),
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Args as clap::CommandFactory>::command(),
                "ecsrdp",
                &mut out,
            );
            write_stdout(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Args as clap::CommandFactory>::command())
                .render(&mut out)
                .map_err(|source| Error::Io {
                    what: "cannot render the manual page".into(),
                    source,
                })?;
            write_stdout(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        None => match args.target {
            None => runtime.block_on(list_clusters(&args.aws, args.json)),
            Some(target @ Target { instance: None, .. }) => {
                runtime.block_on(list(&target, &args.aws, args.json))
            }
            Some(target) => {
                let timeout = args.session.connect_timeout;
                let (endpoint, tunnel) =
                    runtime.block_on(aws_endpoint(&target, &args.aws, timeout))?;
                // Windows AMIs have NLA on: anything less is refused unless asked for.
                let mut session = args.session;
                session.security.get_or_insert(SecurityChoice::Nla);
                crate::launch::run(runtime, endpoint, tunnel, &session)
            }
        },
    }
}

/// The region to ask: the one an ARN in the target names (a cluster lives in one region,
/// whatever the default), else `--region`, else the standard chain's.
fn region<'a>(target: &'a Target, args: &'a AwsArgs) -> Result<Option<&'a str>, Error> {
    match (target.region(), args.region.as_deref()) {
        (Some(arn), Some(flag)) if arn != flag => Err(Error::Usage(format!(
            "the ARN in `{target}` is in region {arn} but --region says {flag}; drop --region, \
             the ARN decides"
        ))),
        (Some(arn), _) => Ok(Some(arn)),
        (None, flag) => Ok(flag),
    }
}

/// Everything about the instance, and its password data fetched at the same time.
struct Located {
    resolved: Resolved,
    password_data: Result<PasswordData, aws::AwsError>,
}

async fn locate(
    target: &Target,
    args: &AwsArgs,
    with_password: bool,
) -> Result<(Aws, Located), Error> {
    let instance = target.require_instance()?;
    let aws = Aws::load(args.profile.as_deref(), region(target, args)?).await?;
    let picked;
    let instance = match instance {
        InstanceRef::Pick => {
            status::phase(format!("listing the instances of {}", target.cluster));
            let rows = aws::list(&aws, &target.cluster).await?;
            status::clear();
            picked = tokio::task::block_in_place(|| crate::picker::pick(&target.cluster, &rows))?;
            &picked
        }
        instance => instance,
    };
    let (arn, ec2_id) = match aws::ec2_instance_id(&aws, &target.cluster, instance).await {
        // A service whose tasks run on several instances: on a terminal, pick one of them.
        Err(aws::AwsError::ServiceOnSeveralInstances { instances, .. })
            if crate::picker::can_ask() =>
        {
            let rows: Vec<aws::Listed> = aws::list(&aws, &target.cluster)
                .await?
                .into_iter()
                .filter(|row| instances.contains(&row.ec2_instance_id))
                .collect();
            let picked =
                tokio::task::block_in_place(|| crate::picker::pick(&target.cluster, &rows))?;
            aws::ec2_instance_id(&aws, &target.cluster, &picked).await?
        }
        found => found?,
    };
    info!(container_instance = %arn, ec2_instance = %ec2_id, "found the container instance");
    let choice = if args.private {
        AddressChoice::Private
    } else {
        AddressChoice::Public
    };
    // Once the instance ID is known, its description and password data are independent.
    let (mut resolved, password_data) = if with_password {
        let (resolved, data) = tokio::join!(
            aws::resolve(&aws, &target.cluster, arn, ec2_id.clone(), choice),
            aws::fetch_password_data(&aws, &ec2_id)
        );
        (resolved?, data)
    } else {
        let resolved = aws::resolve(&aws, &target.cluster, arn, ec2_id, choice).await?;
        (resolved, Ok(PasswordData::NotReady))
    };
    if let Some(via) = &args.via {
        // Through a tunnel, the tunnel is what ecsrdp connects to and the instance needs no
        // address of its own.
        let (host, port) = host_port(via, aws::RDP_PORT).map_err(Error::Usage)?;
        resolved.address = Some(host);
        resolved.port = port;
        for check in resolved.checks.iter_mut().filter(|c| c.name == "address") {
            check.ok = true;
            check.problem = None;
        }
    }
    Ok((
        aws,
        Located {
            resolved,
            password_data,
        },
    ))
}

/// How the session reaches the instance.
enum Path {
    /// Its own address (or `--via`'s).
    Direct,
    /// Through an EC2 Instance Connect Endpoint, to its private address.
    Eice(tunnel::Endpoint),
}

/// Picks the path: `--via` and `--tunnel direct` as told; otherwise the public address when
/// TCP 3389 is open to it, else an EC2 Instance Connect Endpoint of the instance's VPC. The
/// chosen path's own prerequisites replace the address checks.
async fn choose_path(aws: &Aws, resolved: &mut Resolved, args: &AwsArgs) -> Result<Path, Error> {
    let forced = match args.tunnel {
        _ if args.via.is_some() => return Ok(Path::Direct),
        TunnelChoice::Direct => return Ok(Path::Direct),
        TunnelChoice::Auto if args.private => return Ok(Path::Direct),
        TunnelChoice::Eice => true,
        TunnelChoice::Auto => false,
    };
    let open_to_us =
        |r: &Resolved| r.address.is_some() && r.checks.iter().all(|c| c.name != "rdp_port" || c.ok);
    if !forced && open_to_us(resolved) {
        return Ok(Path::Direct);
    }
    // A stopped, Linux or keyless instance is reported as such, whatever the path.
    let blocked = resolved
        .checks
        .iter()
        .any(|c| c.required && !c.ok && c.name != "address");
    if blocked {
        return Ok(Path::Direct);
    }
    let id = resolved.ec2_instance_id.clone();
    let Some(vpc_id) = resolved.vpc_id.clone() else {
        return if forced {
            Err(Error::Prerequisite(format!(
                "instance {id} is in no VPC, so no EC2 Instance Connect Endpoint can reach it"
            )))
        } else {
            Ok(Path::Direct)
        };
    };
    let found = match aws::find_endpoint(aws, &vpc_id, resolved.subnet_id.as_deref()).await {
        Ok(found) => found,
        // Looking was a courtesy: with an address of its own, go direct and say why.
        Err(e) if !forced && resolved.address.is_some() => {
            status::warn(format_args!(
                "could not look for an EC2 Instance Connect Endpoint: {e}"
            ));
            return Ok(Path::Direct);
        }
        Err(e) => return Err(e.into()),
    };
    let Some(endpoint) = found else {
        if !forced && resolved.address.is_some() {
            return Ok(Path::Direct);
        }
        let subnet = resolved.subnet_id.as_deref().unwrap_or("<subnet-id>");
        let why = match (forced, resolved.address.is_some()) {
            (true, _) => {
                format!("--tunnel eice was asked for, but the VPC {vpc_id} of instance {id}")
            }
            (false, true) => format!(
                "instance {id} has no public address open to TCP 3389, and its VPC {vpc_id}"
            ),
            (false, false) => format!("instance {id} has no public address, and its VPC {vpc_id}"),
        };
        return Err(Error::Prerequisite(format!(
            "{why} has no EC2 Instance Connect Endpoint. Create one (free) with `aws ec2 \
             create-instance-connect-endpoint --subnet-id {subnet} --security-group-ids <sg-id>` \
             and let that security group reach the instance on TCP 3389, or come through your \
             own tunnel with --via"
        )));
    };
    let Some(private_ip) = resolved.private_ip.clone() else {
        return Err(Error::Prerequisite(format!(
            "instance {id} has no private IP address for the EC2 Instance Connect Endpoint to reach"
        )));
    };
    resolved.address = Some(private_ip);
    resolved.tunnel = Some(endpoint.clone());
    resolved
        .checks
        .retain(|c| c.name != "address" && c.name != "rdp_port");
    resolved.checks.push(aws::eice_reaches_instance(
        &id,
        &endpoint,
        &resolved.security_groups,
        resolved.security_groups_unreadable,
    ));
    Ok(Path::Eice(endpoint))
}

/// `ecsrdp resolve`: print what was found; exit 3 if a required prerequisite fails.
async fn resolve(target: &Target, args: &AwsArgs, json: bool) -> Result<ExitCode, Error> {
    let (aws, located) = locate(target, args, false).await?;
    let mut resolved = located.resolved;
    choose_path(&aws, &mut resolved, args).await?;
    let mut text = Vec::new();
    let written = if json {
        serde_json::to_writer_pretty(&mut text, &resolved)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(text))
    } else {
        write_resolved(&mut text, &resolved)
    };
    written.map_err(|source| Error::Io {
        what: "cannot format the answer".into(),
        source,
    })?;
    write_stdout(&String::from_utf8_lossy(&text))?;
    match resolved.blocking_problem() {
        Some(problem) => Err(Error::Prerequisite(problem.to_owned())),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn write_resolved(out: &mut impl std::io::Write, r: &Resolved) -> std::io::Result<()> {
    let none = "-";
    writeln!(out, "cluster             {}", r.cluster)?;
    writeln!(out, "container instance  {}", r.container_instance_arn)?;
    writeln!(
        out,
        "EC2 instance        {} ({})",
        r.ec2_instance_id,
        r.name.as_deref().unwrap_or(none)
    )?;
    writeln!(out, "platform, state     {}, {}", r.platform, r.state)?;
    writeln!(
        out,
        "public IP / DNS     {} / {}",
        r.public_ip.as_deref().unwrap_or(none),
        r.public_dns.as_deref().unwrap_or(none)
    )?;
    writeln!(
        out,
        "private IP          {}",
        r.private_ip.as_deref().unwrap_or(none)
    )?;
    writeln!(
        out,
        "connects to         {}:{}",
        r.address.as_deref().unwrap_or(none),
        r.port
    )?;
    if let Some(endpoint) = &r.tunnel {
        writeln!(
            out,
            "through             EC2 Instance Connect Endpoint {} ({})",
            endpoint.id, endpoint.dns_name
        )?;
    }
    writeln!(
        out,
        "key pair            {}",
        r.key_name.as_deref().unwrap_or(none)
    )?;
    for group in &r.security_groups {
        let sources = if group.rdp_sources.is_empty() {
            "no TCP 3389 rule".to_owned()
        } else {
            format!("TCP 3389 from {}", group.rdp_sources.join(", "))
        };
        writeln!(
            out,
            "security group      {} ({}): {sources}",
            group.id, group.name
        )?;
    }
    writeln!(out, "checks")?;
    for check in &r.checks {
        let mark = match (check.ok, check.required) {
            (true, _) => "ok",
            (false, true) => "FAIL",
            (false, false) => "warn",
        };
        writeln!(out, "  {mark:<4} {}", check.name)?;
        if let Some(problem) = &check.problem {
            writeln!(out, "       {problem}")?;
        }
    }
    Ok(())
}

/// `ecsrdp tunnel`: the instance's EICE tunnel on a local port. Every connection to the port
/// gets a tunnel of its own, signed afresh (a presigned URL lives 60 s).
async fn serve_tunnel(target: &Target, args: &AwsArgs, local_port: u16) -> Result<ExitCode, Error> {
    let (aws, mut located) = locate(target, args, false).await?;
    let Path::Eice(endpoint) = choose_path(&aws, &mut located.resolved, args).await? else {
        return Err(Error::Usage(
            "`ecsrdp tunnel` opens an EC2 Instance Connect Endpoint tunnel; --via names a \
             tunnel of your own, so there is nothing to open"
                .into(),
        ));
    };
    let resolved = located.resolved;
    for warning in resolved.warnings() {
        status::warn(warning);
    }
    let request = tunnel::TunnelRequest {
        endpoint_id: endpoint.id.clone(),
        private_ip: resolved.address.clone().unwrap_or_default(),
        remote_port: resolved.port,
        max_duration: args.tunnel_duration,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", local_port))
        .await
        .map_err(|source| Error::Io {
            what: format!("cannot listen on 127.0.0.1:{local_port}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        what: "cannot read the local address".into(),
        source,
    })?;
    write_stdout(&format!(
        "Tunnel to {} ({}:{}) through EC2 Instance Connect Endpoint {} is open.
         Connect your RDP client to {local} as {}; the password: `ecsrdp password {target}`.
         Press Ctrl-C to close it.
",
        resolved.ec2_instance_id, request.private_ip, request.remote_port, endpoint.id, args.user,
    ))?;
    let region = aws.region();
    loop {
        let (mut client, peer) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|source| Error::Io {
                what: "cannot accept a connection".into(),
                source,
            })?,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        info!(%peer, "opening a tunnel for a local client");
        let credentials = aws.credentials().await?;
        let (endpoint, request, region) = (endpoint.clone(), request.clone(), region.clone());
        tokio::spawn(async move {
            let timeout = std::time::Duration::from_secs(15);
            match tunnel::open(&endpoint, &request, &credentials, &region, timeout).await {
                Ok(mut tunnel) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut tunnel.pipe).await;
                    if let Some(error) = tunnel.ended.failure() {
                        eprintln!("ecsrdp: {error}");
                    }
                }
                Err(error) => eprintln!("ecsrdp: {error}"),
            }
        });
    }
}

/// `ecsrdp rdp-file`: a standard .rdp file for the instance's direct address. A private
/// instance's file points at `ecsrdp tunnel`'s local port instead, which the user starts.
async fn rdp_file(
    target: &Target,
    args: &AwsArgs,
    output: Option<std::path::PathBuf>,
    size: Option<(u16, u16)>,
) -> Result<ExitCode, Error> {
    let (aws, mut located) = locate(target, args, false).await?;
    let path = choose_path(&aws, &mut located.resolved, args).await?;
    let resolved = located.resolved;
    if let Some(problem) = resolved.blocking_problem() {
        return Err(Error::Prerequisite(problem.to_owned()));
    }
    let address = match path {
        Path::Direct => format!(
            "{}:{}",
            resolved.address.as_deref().unwrap_or_default(),
            resolved.port
        ),
        Path::Eice(_) => {
            return Err(Error::Usage(format!(
                "instance {} is reached through an EC2 Instance Connect Endpoint, which an .rdp \
                 file cannot open: run `ecsrdp tunnel {target} --local-port 13389` and point the \
                 file at 127.0.0.1:13389 (`ecsrdp rdp-file {target} --via 127.0.0.1:13389`)",
                resolved.ec2_instance_id
            )))
        }
    };
    let (width, height) = size.unwrap_or(crate::launch::DEFAULT_DESKTOP);
    // The format Microsoft's clients read: `name:type:value`, one per line. No password, ever.
    let text = format!(
        "full address:s:{address}\r\n\
         username:s:{}\r\n\
         desktopwidth:i:{width}\r\n\
         desktopheight:i:{height}\r\n\
         screen mode id:i:1\r\n\
         authentication level:i:2\r\n\
         enablecredsspsupport:i:1\r\n\
         prompt for credentials:i:1\r\n",
        args.user
    );
    match output {
        None => write_stdout(&text)?,
        Some(file) => std::fs::write(&file, &text).map_err(|source| Error::Io {
            what: format!("cannot write {}", file.display()),
            source,
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `ecsrdp password`: the password alone on stdout, for pipes; warnings on stderr.
async fn password(target: &Target, args: &AwsArgs) -> Result<ExitCode, Error> {
    let (aws, located) = locate(target, args, true).await?;
    let password = decrypt(&aws, located, args).await?;
    let line = zeroize::Zeroizing::new(format!("{}\n", password.expose()));
    write_stdout(&line)?;
    Ok(ExitCode::SUCCESS)
}

/// Checks the prerequisites, finds the key, waits for the password if asked, decrypts it.
async fn decrypt(aws: &Aws, located: Located, args: &AwsArgs) -> Result<Password, Error> {
    let resolved = &located.resolved;
    if let Some(problem) = resolved.blocking_problem() {
        // An address is only needed to connect directly; `--via` and `password` do without.
        let only_address = resolved
            .checks
            .iter()
            .filter(|c| c.required && !c.ok)
            .all(|c| c.name == "address");
        if !only_address {
            return Err(Error::Prerequisite(problem.to_owned()));
        }
    }
    let id = &resolved.ec2_instance_id;
    let key_name = resolved.key_name.clone().unwrap_or_default();
    // Load the key before any wait, so a missing or wrong file fails at once.
    let (path, key) =
        KeySearch::standard(args.key.clone(), args.key_dir.clone()).load(&key_name)?;
    info!(key = %path.display(), "loaded the private key");
    if let Some(mode) = readable_by_others(&path) {
        status::warn(format_args!(
            "the private key {} can be read by other users (mode {mode:04o}); anyone who can \
             read it can decrypt this instance's password. Restrict it with `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }

    let mut data = located.password_data?;
    let mut waited = None;
    if data == PasswordData::NotReady {
        if let Some(limit) = args.wait {
            let started = std::time::Instant::now();
            data = aws::wait_for_password_data(aws, id, limit, args.poll_interval).await?;
            waited = Some(started.elapsed());
        }
    }
    let PasswordData::Ready(data) = data else {
        return Err(Error::PasswordNotReady {
            instance: id.clone(),
            waited,
        });
    };
    key.decrypt_password(&data).map_err(|source| match source {
        KeyError::WrongKey => Error::WrongKey {
            path,
            key_name,
            instance: id.clone(),
        },
        other => Error::KeyFile(KeyFileError::Key {
            path,
            source: other,
        }),
    })
}

/// `ecsrdp <cluster>/<instance>`: resolve, pick the path, decrypt, and open the tunnel when the
/// path needs one.
async fn aws_endpoint(
    target: &Target,
    args: &AwsArgs,
    timeout: std::time::Duration,
) -> Result<(Endpoint, Option<tunnel::Tunnel>), Error> {
    status::phase(match target.instance {
        Some(InstanceRef::Pick) => format!("looking up {}", target.cluster),
        _ => format!("looking up {target}"),
    });
    let (aws, mut located) = locate(target, args, true).await?;
    let path = choose_path(&aws, &mut located.resolved, args).await?;
    let resolved = located.resolved.clone();
    // A security group does not stand between a tunnel and the instance's own loopback.
    if args.via.is_none() {
        for warning in resolved.warnings() {
            status::warn(warning);
        }
    }
    let Some(host) = resolved.address.clone() else {
        let problem = resolved
            .blocking_problem()
            .unwrap_or("the instance has no address");
        return Err(Error::Prerequisite(problem.to_owned()));
    };
    let port = resolved.port;
    let password = decrypt(&aws, located, args).await?;
    let tunnel = match path {
        Path::Direct => None,
        Path::Eice(endpoint) => {
            info!(endpoint = %endpoint.id, %host, "opening a tunnel through the EC2 Instance Connect Endpoint");
            status::phase(format!(
                "opening a tunnel through EC2 Instance Connect Endpoint {}",
                endpoint.id
            ));
            let request = tunnel::TunnelRequest {
                endpoint_id: endpoint.id.clone(),
                private_ip: host.clone(),
                remote_port: port,
                max_duration: args.tunnel_duration,
            };
            let credentials = aws.credentials().await?;
            let mut opened =
                tunnel::open(&endpoint, &request, &credentials, &aws.region(), timeout).await?;
            // Credentials are asked for again each time: a session may outlive them.
            let aws = aws.clone();
            opened.reopen = Some(std::sync::Arc::new(move || {
                let (aws, endpoint, request) = (aws.clone(), endpoint.clone(), request.clone());
                Box::pin(async move {
                    let credentials = aws.credentials().await.map_err(|e| e.to_string())?;
                    tunnel::open(&endpoint, &request, &credentials, &aws.region(), timeout)
                        .await
                        .map_err(|e| e.to_string())
                })
            }));
            Some(opened)
        }
    };
    let title = match &target.instance {
        // The one picked, not the `cluster/` typed.
        Some(InstanceRef::Pick) => format!("{}/{}", target.cluster, resolved.ec2_instance_id),
        _ => target.to_string(),
    };
    let endpoint = Endpoint {
        title,
        // Keyed by instance, not address: a tunnel's localhost:port must not collide.
        trust_key: TrustKey::new(resolved.ec2_instance_id.clone()),
        host,
        port,
        user: args.user.clone(),
        domain: None,
        password,
    };
    Ok((endpoint, tunnel))
}

/// `ecsrdp` alone: the account's clusters in the region, with what is in them.
async fn list_clusters(args: &AwsArgs, json: bool) -> Result<ExitCode, Error> {
    let aws = Aws::load(args.profile.as_deref(), args.region.as_deref()).await?;
    let rows = aws::clusters(&aws).await?;
    if json {
        return print_json(&rows);
    }
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str(&format!(
            "no ECS clusters in {}; check --region and --profile\n",
            aws.region()
        ));
    } else {
        let mut table =
            vec![["CLUSTER", "STATUS", "CONTAINER INSTANCES", "RUNNING TASKS"].map(str::to_owned)];
        for row in &rows {
            table.push([
                row.name.clone(),
                row.status.clone(),
                row.container_instances.to_string(),
                row.running_tasks.to_string(),
            ]);
        }
        text.push_str(&columns(&table));
        text.push_str("\nlist a cluster's instances with: ecsrdp <cluster>\n");
    }
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `ecsrdp <cluster>`: a table of the cluster's container instances.
async fn list(target: &Target, args: &AwsArgs, json: bool) -> Result<ExitCode, Error> {
    let cluster = target.cluster.as_str();
    let aws = Aws::load(args.profile.as_deref(), region(target, args)?).await?;
    let rows = aws::list(&aws, cluster).await?;
    if json {
        return print_json(&rows);
    }
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str(&format!("cluster {cluster} has no container instances\n"));
    } else {
        let mut table = vec![[
            "CONTAINER INSTANCE",
            "EC2 INSTANCE",
            "PLATFORM",
            "STATE",
            "ECS",
            "AGENT",
            "TASKS",
            "ADDRESS",
            "KEY PAIR",
            "NAME",
        ]
        .map(str::to_owned)];
        for row in &rows {
            table.push([
                row.container_instance_id.clone(),
                row.ec2_instance_id.clone(),
                row.platform.clone(),
                row.state.clone(),
                row.status.to_lowercase(),
                if row.agent_connected {
                    "connected"
                } else {
                    "disconnected"
                }
                .to_owned(),
                row.running_tasks.to_string(),
                row.address.clone().unwrap_or_else(|| "-".into()),
                row.key_name.clone().unwrap_or_else(|| "-".into()),
                row.name.clone().unwrap_or_default(),
            ]);
        }
        text.push_str(&columns(&table));
        // Suggest one that can work: Windows, running, launched with a key pair.
        let ready = rows
            .iter()
            .find(|r| r.is_windows() && r.state == "running" && r.key_name.is_some());
        if let Some(first) = ready {
            text.push_str(&format!(
                "\nconnect with: ecsrdp {cluster}/{}\n",
                first.ec2_instance_id
            ));
        }
    }
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// A listing as pretty JSON on stdout, for scripts.
fn print_json(rows: &impl serde::Serialize) -> Result<ExitCode, Error> {
    let text = serde_json::to_string_pretty(rows).map_err(|e| Error::Io {
        what: "cannot format the answer".into(),
        source: e.into(),
    })?;
    write_stdout(&format!("{text}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Left-aligned columns, each as wide as its widest cell.
pub(crate) fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Writes a command's answer to stdout. A closed pipe (`ecsrdp password … | head -c 4`) is the
/// reader's choice, not a failure.
fn write_stdout(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io {
            what: "cannot write to stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `ecsrdp trust list|forget`.
fn trust(command: TrustCommand) -> Result<ExitCode, Error> {
    let store = TrustStore::open_default()?;
    match command {
        TrustCommand::List => {
            for (key, fingerprint) in store.entries()? {
                println!("{key}  {fingerprint}");
            }
        }
        TrustCommand::Forget { key } => {
            if store.forget(&key)? {
                println!("forgot the certificate remembered for {key}");
            } else {
                return Err(Error::Usage(format!(
                    "no certificate is remembered for `{key}`; `ecsrdp trust list` shows what is"
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
