-- Run by mssql-entrypoint.sh (conf/compose.yaml) as sa each time the
-- container starts; every step is safe to repeat. sqlcmd supplies
-- $(XAC_USER) and $(XAC_PASSWORD).
--
-- 1. sp_sqljdbc_xa_install (in master) creates the xp_sqljdbc_xa_* procedures
--    that the Microsoft JDBC driver, and xac's mssql driver, call for XA
--    (SQL Server 2017 CU16 and later have them built in; no DLL to copy) and
--    the SqlJDBCXAUser role allowed to run them. It drops and recreates
--    them, so the role membership below comes after it.
-- 2. The login, a user in master in SqlJDBCXAUser (the procedures live in
--    master), and db_owner of the test databases: xac creates its
--    commit-marker table there, the tests their own tables.

SET NOCOUNT ON;
GO
USE master;
GO
EXEC sp_sqljdbc_xa_install;
GO
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'$(XAC_USER)')
    CREATE LOGIN [$(XAC_USER)] WITH PASSWORD = N'$(XAC_PASSWORD)', CHECK_POLICY = OFF,
        DEFAULT_DATABASE = master;
ELSE
    ALTER LOGIN [$(XAC_USER)] WITH PASSWORD = N'$(XAC_PASSWORD)', CHECK_POLICY = OFF;
GO
-- A second database is for tests that need a second SQL Server resource
-- (two last resources in one transaction must be refused).
ALTER SERVER ROLE dbcreator ADD MEMBER [$(XAC_USER)];
GO
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(XAC_USER)')
    CREATE USER [$(XAC_USER)] FOR LOGIN [$(XAC_USER)];
GO
ALTER ROLE SqlJDBCXAUser ADD MEMBER [$(XAC_USER)];
GO
IF DB_ID(N'xac_test') IS NULL CREATE DATABASE xac_test;
GO
IF DB_ID(N'xac_test2') IS NULL CREATE DATABASE xac_test2;
GO
USE xac_test;
GO
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(XAC_USER)')
    CREATE USER [$(XAC_USER)] FOR LOGIN [$(XAC_USER)];
GO
ALTER ROLE db_owner ADD MEMBER [$(XAC_USER)];
GO
USE xac_test2;
GO
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(XAC_USER)')
    CREATE USER [$(XAC_USER)] FOR LOGIN [$(XAC_USER)];
GO
ALTER ROLE db_owner ADD MEMBER [$(XAC_USER)];
GO
