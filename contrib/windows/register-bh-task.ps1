<#
  register-bh-task.ps1: registers a Windows scheduled task that runs `bh run` for one job daily.

  Install (PowerShell as Administrator), after `npm install -g` of bh:
    mkdir C:\ProgramData\bh
    copy config.ini C:\ProgramData\bh\config.ini
    bh config init-key C:\ProgramData\bh\backup.key    # key_file = C:\ProgramData\bh\backup.key in [ENCRYPTION]
    icacls C:\ProgramData\bh /inheritance:r /grant:r "SYSTEM:(OI)(CI)F" "Administrators:(OI)(CI)F"
    .\register-bh-task.ps1 -Config C:\ProgramData\bh\config.ini -At 03:00
    Start-ScheduledTask -TaskName "bh run"              # one run now
    Get-ScheduledTaskInfo -TaskName "bh run"            # LastTaskResult is bh's exit code (0 ok, 2, 3, ...)
  Remove: Unregister-ScheduledTask -TaskName "bh run" -Confirm:$false

  The task runs as SYSTEM (it can read every file) with the config and key readable by SYSTEM
  and Administrators only. Secrets are never put on the task's command line: use key_file, or
  ${VAR} references to machine environment variables (Settings → System → Environment Variables).
  A run missed while the machine was off starts as soon as it is back (StartWhenAvailable); a
  run still going when the next one is due makes the next one wait its turn (bh's own run lock
  would refuse it anyway, exit 11).
#>
param(
  [Parameter(Mandatory = $true)] [string] $Config,
  [string] $At = '03:00',
  [string] $TaskName = 'bh run',
  [string] $StateDir = 'C:\ProgramData\bh\state'
)
$ErrorActionPreference = 'Stop'

$bh = (Get-Command bh.cmd -ErrorAction SilentlyContinue).Source
if (-not $bh) { throw 'bh.cmd is not on PATH: install bh (npm install -g) first' }
if (-not (Test-Path -LiteralPath $Config)) { throw "no config file at $Config" }

$action = New-ScheduledTaskAction -Execute $bh -Argument ('run --config "{0}" --state-dir "{1}"' -f $Config, $StateDir)
$trigger = New-ScheduledTaskTrigger -Daily -At $At
$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -MultipleInstances Queue -ExecutionTimeLimit (New-TimeSpan -Hours 12) -DontStopOnIdleEnd
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings -Principal $principal -Description "bh backup job $Config" -Force | Out-Null
Write-Host "registered '$TaskName': bh run --config $Config daily at $At"
