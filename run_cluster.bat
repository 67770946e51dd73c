@echo off
rem One-command local MiniTrue cluster on Windows: the same steps as run_cluster.sh.
rem Builds in release, starts the embedded MQTT broker unless something listens on 1883,
rem starts three nodes with the same command (each takes the next free slot: polaris
rem 8080/9000, sirius 8081/9001, vega 8082/9002), the simulator, builds the dashboard when
rem npm is present (before the server, so the binary embeds it), prints the URLs, and stops
rem everything when you press a key.
setlocal enabledelayedexpansion
cd /d "%~dp0"

if "%MINITRUE_RUN_DIR%"=="" set MINITRUE_RUN_DIR=run
set BIN=target\release
set LOGS=%MINITRUE_RUN_DIR%\logs
set DATA=%MINITRUE_RUN_DIR%\data

for %%p in (8080 8081 8082 9000 9001 9002) do (
  netstat -an | findstr /r /c:"127.0.0.1:%%p .*LISTENING" /c:"0.0.0.0:%%p .*LISTENING" >nul
  if not errorlevel 1 (
    echo [run_cluster] error: port %%p is in use; stop the other MiniTrue first
    exit /b 1
  )
)

if not exist "%LOGS%" mkdir "%LOGS%"
if not exist "%DATA%" mkdir "%DATA%"

rem The dashboard first, so the release build below embeds this bundle (build.rs).
where npm >nul 2>nul
if errorlevel 1 (
  echo [run_cluster] npm not found: the dashboard is not built. Install Node.js 20+ and re-run.
) else (
  echo [run_cluster] building the dashboard...
  pushd frontend
  if not exist node_modules call npm ci --no-audit --no-fund > "..\%LOGS%\frontend-build.log" 2>&1
  call npm run build >> "..\%LOGS%\frontend-build.log" 2>&1
  popd
)

echo [run_cluster] building (release)...
cargo build --release --bins || exit /b 1

set STARTED_BROKER=0
netstat -an | findstr /r /c:":1883 .*LISTENING" >nul
if errorlevel 1 (
  echo [run_cluster] starting the embedded MQTT broker on 127.0.0.1:1883
  start "minitrue-broker" /b "%BIN%\minitrue-broker.exe" --listen 127.0.0.1:1883 > "%LOGS%\broker.log" 2>&1
  set STARTED_BROKER=1
  timeout /t 1 /nobreak >nul
) else (
  echo [run_cluster] using the MQTT broker already listening on 1883
)

for %%i in (0 1 2) do (
  start "minitrue-node-%%i" /b "%BIN%\minitrue-server.exe" --mode=all --broker tcp://127.0.0.1:1883 --data_dir "%DATA%" > "%LOGS%\node-%%i.log" 2>&1
  timeout /t 2 /nobreak >nul
)
start "minitrue-simulator" /b "%BIN%\minitrue-publisher.exe" --sim=true --devices 3 --interval 1 --broker tcp://127.0.0.1:1883 > "%LOGS%\simulator.log" 2>&1

echo.
echo   MiniTrue is running: 3 nodes, broker on :1883, simulator with 3 devices.
echo.
echo   Dashboard   http://localhost:8080/   (also :8081, :8082)
echo   Status      curl -s localhost:8080/status
echo   Logs        %LOGS%\   Data  %DATA%\
echo.
echo   Press any key to stop everything.
pause >nul

echo [run_cluster] stopping...
taskkill /im minitrue-publisher.exe >nul 2>nul
rem Without /f taskkill asks the nodes to close, so they flush before exiting.
taskkill /im minitrue-server.exe >nul 2>nul
timeout /t 3 /nobreak >nul
taskkill /f /im minitrue-server.exe >nul 2>nul
if "%STARTED_BROKER%"=="1" taskkill /f /im minitrue-broker.exe >nul 2>nul
echo [run_cluster] stopped.
endlocal
